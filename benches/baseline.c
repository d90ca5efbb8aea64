/* The baseline the runner is measured against: a C program that does only what a
 * container launch cannot avoid. It makes a cgroup with cpu, memory and pids limits,
 * clones into the same namespaces as a task (user, pid, mount, net, uts, ipc), writes
 * the id maps, puts the child in the cgroup, lets it exec the command, waits, and
 * removes the cgroup. No mounts, no pivot_root, no capabilities, no seccomp.
 *
 * usage: baseline CGROUP_ROOT_V1_OR_V2 CMD [ARGS...]   (run as root)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void put(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, value, strlen(value)) < 0) { perror(path); exit(2); }
    close(fd);
}

static int v2;
static const char *controllers_v1[] = {"cpu", "memory", "pids"};
static char dirs[3][256];

static void make_cgroup(void) {
    char path[320];
    if (v2) {
        snprintf(dirs[0], sizeof dirs[0], "/sys/fs/cgroup/tasksandbox-baseline-%d", getpid());
        mkdir(dirs[0], 0755);
        snprintf(path, sizeof path, "%s/cpu.max", dirs[0]); put(path, "100000 100000");
        snprintf(path, sizeof path, "%s/memory.max", dirs[0]); put(path, "2147483648");
        snprintf(path, sizeof path, "%s/pids.max", dirs[0]); put(path, "4096");
        return;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(dirs[i], sizeof dirs[i], "/sys/fs/cgroup/%s/tasksandbox-baseline-%d", controllers_v1[i], getpid());
        if (mkdir(dirs[i], 0755) < 0) { perror(dirs[i]); exit(2); }
    }
    snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dirs[0]); put(path, "100000");
    snprintf(path, sizeof path, "%s/memory.limit_in_bytes", dirs[1]); put(path, "2147483648");
    snprintf(path, sizeof path, "%s/pids.max", dirs[2]); put(path, "4096");
}

static void join_cgroup(pid_t pid) {
    char path[320], value[32];
    snprintf(value, sizeof value, "%d", pid);
    for (int i = 0; i < (v2 ? 1 : 3); i++) {
        snprintf(path, sizeof path, "%s/cgroup.procs", dirs[i]);
        put(path, value);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: baseline v1|v2 CMD [ARGS...]\n"); return 2; }
    v2 = strcmp(argv[1], "v2") == 0;
    make_cgroup();
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0) { perror("pipe"); return 2; }
    long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
    pid_t pid = syscall(SYS_clone, flags, 0, 0, 0, 0);
    if (pid < 0) { perror("clone"); return 2; }
    if (pid == 0) {
        char go;
        close(sync[1]);
        if (read(sync[0], &go, 1) != 1) _exit(127);
        if (setresgid(0, 0, 0) || setresuid(0, 0, 0)) _exit(126);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    close(sync[0]);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid); put(path, "0 100000 65536\n");
    snprintf(path, sizeof path, "/proc/%d/gid_map", pid); put(path, "0 100000 65536\n");
    join_cgroup(pid);
    if (write(sync[1], "g", 1) != 1) { perror("write"); return 2; }
    close(sync[1]);
    int status;
    if (waitpid(pid, &status, 0) < 0) { perror("waitpid"); return 2; }
    for (int i = 0; i < (v2 ? 1 : 3); i++) rmdir(dirs[i]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
