"""How node programs are contained: bubblewrap (bwrap.py), a seccomp filter (seccomp.py), control groups
(cgroups.py), a watchdog (watch.py), GPU shares (gpu_share.py); run.py runs one program under all of them, with
the limits of config.py's SandboxConfig."""
