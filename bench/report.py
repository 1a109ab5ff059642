"""What the benchmark scripts share: whether perf can count system calls here, and how a result
table is shown and saved."""
import shutil, subprocess


def perf_works():
    """perf is installed and its raw_syscalls tracepoint can be counted on this machine."""
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-x,", "true"], capture_output=True, text=True)
    return r.returncode == 0 and "raw_syscalls" in r.stderr


def emit(lines, markdown=None):
    """Prints the table made of `lines` and, if `markdown` names a file, writes it there too."""
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if markdown:
        with open(markdown, "w") as f:
            f.write(text)
