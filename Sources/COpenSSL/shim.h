#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>

/* Expression macros are not imported by Swift; re-export what we need. */
static inline unsigned long COpenSSL_version_number(void) { return OPENSSL_VERSION_NUMBER; }

/* Typed-pointer shims: Swift holds raw bytes; C wants unsigned char *. */
static inline int COpenSSL_aead_set_ivlen(EVP_CIPHER_CTX *ctx, int len) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, len, NULL);
}
static inline int COpenSSL_aead_get_tag(EVP_CIPHER_CTX *ctx, void *tag, int len) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, len, tag);
}
static inline int COpenSSL_aead_set_tag(EVP_CIPHER_CTX *ctx, void *tag, int len) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, len, tag);
}
#endif
