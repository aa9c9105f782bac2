#ifndef CSYSTEM_SHIMS_H
#define CSYSTEM_SHIMS_H
/* System calls Swift's Glibc module does not export (epoll, eventfd, accept4), wrapped
   with plain fixed-layout types so no packed C struct crosses into Swift. */
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

typedef struct {
    uint32_t events;
    uint64_t data;
} csys_event;

extern const uint32_t CSYS_EPOLLIN;
extern const uint32_t CSYS_EPOLLOUT;
extern const uint32_t CSYS_EPOLLERR;
extern const uint32_t CSYS_EPOLLHUP;
extern const uint32_t CSYS_EPOLLRDHUP;
extern const uint32_t CSYS_EPOLLET;

int csys_epoll_create(void);
int csys_epoll_add(int epfd, int fd, uint32_t events, uint64_t data);
int csys_epoll_mod(int epfd, int fd, uint32_t events, uint64_t data);
int csys_epoll_del(int epfd, int fd);
int csys_epoll_wait(int epfd, csys_event *events, int max, int timeout_ms);
int csys_eventfd(void);
int csys_eventfd_signal(int fd);
int csys_eventfd_drain(int fd);
int csys_accept(int fd, struct sockaddr *addr, socklen_t *len);
int csys_socket(int domain, int type);
int csys_set_nonblocking(int fd);
int csys_ignore_sigpipe(void);
#endif
