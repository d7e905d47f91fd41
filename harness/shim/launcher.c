/*
 * containerd-shim-stub-v2, warm: the binary containerd execs for `start` and `delete`.
 *
 * Why C: a Python interpreter costs tens of milliseconds before it runs a line, and
 * containerd waits for `start` inside Tasks.Create. This launcher costs about a
 * millisecond: it connects to the run's fork server (harness/shim/forkserver.py; its unix
 * socket is $RECONVERGE_SHIM_FORK), hands over argv, the environment, the working
 * directory and its own stdin, stdout and stderr (SCM_RIGHTS), and exits with the status
 * the fork server's worker reports. The worker writes to those very fds, so the address
 * `start` prints and the DeleteResponse `delete` writes reach containerd unchanged.
 *
 * When no fork server answers (variable unset or empty, nobody listening), it execs the
 * cold path: $RECONVERGE_SHIM_COLD, else the next containerd-shim-stub-v2 on PATH that is
 * not this file (the virtualenv's console script, harness.shim.main:main).
 *
 * Wire format (little endian), one request per connection:
 *   "RCV1", u32 length of the rest, then u32 argc, u32 envc and NUL-terminated strings:
 *   cwd, argv[0..argc), envp[0..envc); fds 0, 1, 2 ride on the first sendmsg.
 * Reply: i32 exit status. End of stream without one: exit 1 with one line on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static const char NAME[] = "containerd-shim-stub-v2";

static void put_u32(char *p, uint32_t v) {
    p[0] = (char)(v & 0xff);
    p[1] = (char)((v >> 8) & 0xff);
    p[2] = (char)((v >> 16) & 0xff);
    p[3] = (char)((v >> 24) & 0xff);
}

/* The cold path: the pure-Python shim. Never returns. */
static void cold(char **argv) {
    const char *target = getenv("RECONVERGE_SHIM_COLD");
    if (target && *target) {
        execv(target, argv);
        fprintf(stderr, "%s: cannot exec cold shim %s: %s\n", NAME, target, strerror(errno));
        _exit(2);
    }
    struct stat self;
    int have_self = stat("/proc/self/exe", &self) == 0;
    const char *path = getenv("PATH");
    if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
    char candidate[PATH_MAX];
    while (*path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        if (len > 0 && len + sizeof(NAME) + 1 < sizeof(candidate)) {
            memcpy(candidate, path, len);
            candidate[len] = '/';
            memcpy(candidate + len + 1, NAME, sizeof(NAME));
            struct stat st;
            if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode) && access(candidate, X_OK) == 0 &&
                !(have_self && st.st_dev == self.st_dev && st.st_ino == self.st_ino)) {
                execv(candidate, argv);
            }
        }
        path = end ? end + 1 : path + len;
    }
    fprintf(stderr, "%s: no fork server and no cold shim on PATH (fix: ./ci/bootstrap)\n", NAME);
    _exit(2);
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *server = getenv("RECONVERGE_SHIM_FORK");
    if (server == NULL || *server == '\0') cold(argv);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(server) >= sizeof(addr.sun_path)) cold(argv);
    strcpy(addr.sun_path, server);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) cold(argv);
    if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(s);
        cold(argv); /* nobody listening: the fallback, before anything was sent */
    }

    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) cwd[0] = '\0';
    int envc = 0;
    size_t len = 8 + strlen(cwd) + 1;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    for (char **e = environ; *e; e++, envc++) len += strlen(*e) + 1;
    char *buf = malloc(8 + len);
    if (buf == NULL) {
        fprintf(stderr, "%s: out of memory\n", NAME);
        return 2;
    }
    memcpy(buf, "RCV1", 4);
    put_u32(buf + 4, (uint32_t)len);
    put_u32(buf + 8, (uint32_t)argc);
    put_u32(buf + 12, (uint32_t)envc);
    char *p = buf + 16;
    size_t n = strlen(cwd) + 1;
    memcpy(p, cwd, n);
    p += n;
    for (int i = 0; i < argc; i++) {
        n = strlen(argv[i]) + 1;
        memcpy(p, argv[i], n);
        p += n;
    }
    for (char **e = environ; *e; e++) {
        n = strlen(*e) + 1;
        memcpy(p, *e, n);
        p += n;
    }

    /* stdin, stdout, stderr as containerd gave them; /dev/null for one that is closed */
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = fcntl(i, F_GETFD) < 0 ? open("/dev/null", O_RDWR | O_CLOEXEC) : i;
    }
    char control[CMSG_SPACE(sizeof(fds))];
    memset(control, 0, sizeof(control));
    struct iovec iov = {.iov_base = buf, .iov_len = 8};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cm), fds, sizeof(fds));
    ssize_t sent;
    do {
        sent = sendmsg(s, &msg, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent != 8) {
        close(s);
        cold(argv); /* the server went away before it saw anything */
    }
    if (write_all(s, buf + 8, len) != 0) {
        fprintf(stderr, "%s: fork server %s: send: %s\n", NAME, server, strerror(errno));
        return 1;
    }
    free(buf);

    unsigned char status[4];
    size_t got = 0;
    while (got < sizeof(status)) {
        ssize_t r = read(s, status + got, sizeof(status) - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            fprintf(stderr, "%s: fork server %s closed without an exit status\n", NAME, server);
            return 1;
        }
        got += (size_t)r;
    }
    int32_t code = (int32_t)((uint32_t)status[0] | (uint32_t)status[1] << 8 |
                             (uint32_t)status[2] << 16 | (uint32_t)status[3] << 24);
    return code & 0xff;
}
