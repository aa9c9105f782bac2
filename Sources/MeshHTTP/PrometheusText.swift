/// Pieces of Prometheus's text exposition format shared by the node's and the gateway's
/// `/metrics`: label values escaped and numbers written as the format reads them.
public enum PrometheusText {
    /// `name="value"` with the value escaped as the text format requires (backslash, double
    /// quote and line feed).
    public static func label(_ name: String, _ value: String) -> String {
        var v = ""
        for c in value.unicodeScalars {
            switch c {
            case "\\": v += "\\\\"
            case "\"": v += "\\\""
            case "\n": v += "\\n"
            default: v.unicodeScalars.append(c)
            }
        }
        return "\(name)=\"\(v)\""
    }

    /// A sample value: integers without a fraction, anything else as Swift prints a Double
    /// (`NaN`, `+Inf` and `-Inf` as the format spells them).
    public static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        return v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
    }
}
