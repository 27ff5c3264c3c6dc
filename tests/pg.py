"""A real PostgreSQL server for the tests, from Debian's packages (the README's test command
installs them): initdb in a temporary folder, a free loopback port, trust auth (any password
is accepted), or with `password` set, SCRAM password auth (the right password is needed)."""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile


def pg_bin(name):
    found = shutil.which(name) or next(iter(sorted(glob.glob(
        f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: install Debian's postgresql package "
                           "(the README's test command does)")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """Start with `start()`, get `url`, end with `stop()`. Root runs it as user postgres."""

    def __init__(self, password=None):
        self.password = password
        self.root = tempfile.mkdtemp(prefix="pg-")
        self.port = free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.prefix = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            self.user, self.prefix = "postgres", ["runuser", "-u", "postgres", "--"]
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, "postgres")
        self.data = os.path.join(self.root, "data")

    def _run(self, *cmd):
        env = dict(os.environ, **({"PGPASSWORD": self.password} if self.password else {}))
        subprocess.run(self.prefix + list(cmd), check=True, capture_output=True, timeout=120,
                       env=env)

    def start(self):
        auth = ["-A", "trust"]
        if self.password:
            pwfile = os.path.join(self.root, "pwfile")
            with open(pwfile, "w") as f:
                f.write(self.password + "\n")
            if os.geteuid() == 0:
                shutil.chown(pwfile, self.user)
            auth = ["-A", "scram-sha-256", f"--pwfile={pwfile}"]
        self._run(pg_bin("initdb"), "-D", self.data, *auth, "-U", self.user, "--no-sync")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(pg_bin("pg_ctl"), "-D", self.data, "-o", opts, "-l",
                  os.path.join(self.root, "log"), "-w", "start")
        self._run(pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                  "optuna")
        return self

    @property
    def url(self):
        """The database URL without a password (trust auth, or PGPASSWORD)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/optuna"

    @property
    def url_with_password(self):
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/optuna"

    def stop(self):
        try:
            self._run(pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
