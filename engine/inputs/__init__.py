"""What a user hands in, checked before anything runs: every config value (values.py: the `Section` each settings
class reads its keys with), the files named on the command line (files.py), and the check Hydra runs before it
makes a run directory (startup.py)."""
