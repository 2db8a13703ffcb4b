// SPDX-License-Identifier: Apache-2.0
// helper is the real process behind package testproc. Every mode (but
// sleep) waits for stdin to close before it acts, so a test can start
// watching first and then decide the exact moment of the exit.
//
//   helper exit CODE      exit(CODE)
//   helper segv           fault on a NULL write (a real SIGSEGV)
//   helper sleep          run until killed
//   helper threads N CODE N extra threads; stdin commands:
//                           't' the extra threads exit (joined), "ok\n" on stdout
//                           'l' the leader thread exits, another thread reads on
//                         EOF: exit(CODE) from whichever thread reads
//   helper zombie CODE    fork a child, print its pid, never reap it; the child
//                         exits with CODE at EOF, the parent lives until killed
//   helper forker         a master; stdin commands, each answered with a line:
//                           'w' fork a worker (a copy that pauses), its pid
//                           'c' fork a child that runs /bin/sleep (no copy), its pid
//                           'x' exec this program anew (same pid), "execed"
//                         EOF: exit(0); children are left running
//   helper coredump DIR   like segv, but dumps core (into DIR, with core_pattern
//                         "core")
//   helper alloc          at EOF, allocate and touch memory until killed
//   helper service DIR    a daemon that runs until told by a signal: SIGUSR1
//                         exit(3), SIGUSR2 fault and dump core into DIR,
//                         SIGHUP allocate and touch memory until killed;
//                         DIR/ready.PID says its handlers are in place
//   helper crowd N        fork N idle children (a busy host's unrelated
//                         processes), print "ready N"; at EOF kill and reap
//                         them all, then exit
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t told;

static void tell(int sig) { told = sig; }

static void wait_eof(void) {
	char c;
	while (read(0, &c, 1) > 0) {
	}
}

static int stop_pipe[2];
static pthread_t *workers;
static int nworkers;
static int code;

static void *worker(void *arg) {
	char c;
	(void)arg;
	while (read(stop_pipe[0], &c, 1) > 0) {
	}
	return NULL;
}

static void *command_loop(void *arg) {
	char c;
	(void)arg;
	for (;;) {
		ssize_t n = read(0, &c, 1);
		if (n <= 0)
			exit(code);
		if (c == 't') {
			close(stop_pipe[1]);
			for (int i = 0; i < nworkers; i++)
				pthread_join(workers[i], NULL);
			if (write(1, "ok\n", 3) != 3)
				exit(100);
		} else if (c == 'l') {
			pthread_t t;
			if (pthread_create(&t, NULL, command_loop, NULL) != 0)
				exit(101);
			pthread_exit(NULL);
		}
	}
}

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	// No core files: CoreDumped stays false and tests stay fast.
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	const char *mode = argv[1];
	if (strcmp(mode, "exit") == 0 && argc == 3) {
		wait_eof();
		return atoi(argv[2]);
	}
	if (strcmp(mode, "segv") == 0) {
		wait_eof();
		*(volatile int *)0 = 1;
		return 3;
	}
	if (strcmp(mode, "sleep") == 0) {
		for (;;)
			pause();
	}
	if (strcmp(mode, "threads") == 0 && argc == 4) {
		nworkers = atoi(argv[2]);
		code = atoi(argv[3]);
		if (pipe(stop_pipe) != 0)
			return 102;
		workers = calloc(nworkers, sizeof *workers);
		for (int i = 0; i < nworkers; i++)
			if (pthread_create(&workers[i], NULL, worker, NULL) != 0)
				return 103;
		if (write(1, "ready\n", 6) != 6)
			return 104;
		command_loop(NULL);
	}
	if (strcmp(mode, "forker") == 0) {
		if (argc == 3 && write(1, "execed\n", 7) != 7)
			return 106;
		char c;
		while (read(0, &c, 1) > 0) {
			pid_t child;
			switch (c) {
			case 'w':
			case 'c':
				child = fork();
				if (child < 0)
					return 107;
				if (child == 0) {
					close(0);
					close(1);
					if (c == 'c')
						execl("/bin/sleep", "sleep", "1000", (char *)NULL);
					for (;;)
						pause();
				}
				printf("%d\n", child);
				fflush(stdout);
				break;
			case 'x':
				execl("/proc/self/exe", argv[0], "forker", "again", (char *)NULL);
				return 108;
			}
		}
		return 0;
	}
	if (strcmp(mode, "coredump") == 0 && argc == 3) {
		struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
		if (chdir(argv[2]) != 0 || setrlimit(RLIMIT_CORE, &unlimited) != 0)
			return 109;
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		wait_eof();
		*(volatile int *)0 = 1;
		return 3;
	}
	if (strcmp(mode, "service") == 0 && argc == 3) {
		struct rlimit unlimited = {RLIM_INFINITY, RLIM_INFINITY};
		if (chdir(argv[2]) != 0 || setrlimit(RLIMIT_CORE, &unlimited) != 0)
			return 110;
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		signal(SIGUSR1, tell);
		signal(SIGUSR2, tell);
		signal(SIGHUP, tell);
		char ready[64];
		snprintf(ready, sizeof ready, "ready.%d", (int)getpid());
		FILE *f = fopen(ready, "w");
		if (!f || fclose(f) != 0)
			return 111;
		while (!told)
			pause();
		if (told == SIGUSR1)
			return 3;
		if (told == SIGUSR2)
			*(volatile int *)0 = 1;
		for (;;) {
			char *p = malloc(1 << 20);
			if (p)
				memset(p, 1, 1 << 20);
		}
	}
	if (strcmp(mode, "alloc") == 0) {
		wait_eof();
		for (;;) {
			char *p = malloc(1 << 20);
			if (p)
				memset(p, 1, 1 << 20);
		}
	}
	if (strcmp(mode, "crowd") == 0 && argc == 3) {
		int n = atoi(argv[2]);
		pid_t self = getpid();
		pid_t *kids = calloc(n > 0 ? n : 1, sizeof *kids);
		for (int i = 0; i < n; i++) {
			kids[i] = fork();
			if (kids[i] < 0) {
				n = i;
				break;
			}
			if (kids[i] == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				if (getppid() != self)
					_exit(0);
				close(0);
				close(1);
				for (;;)
					pause();
			}
		}
		printf("ready %d\n", n);
		fflush(stdout);
		wait_eof();
		for (int i = 0; i < n; i++)
			kill(kids[i], SIGKILL);
		for (int i = 0; i < n; i++)
			waitpid(kids[i], NULL, 0);
		return 0;
	}
	if (strcmp(mode, "zombie") == 0 && argc == 3) {
		pid_t child = fork();
		if (child < 0)
			return 105;
		if (child == 0) {
			wait_eof();
			_exit(atoi(argv[2]));
		}
		printf("%d\n", child);
		fflush(stdout);
		close(0);
		for (;;)
			pause();
	}
	return 2;
}
