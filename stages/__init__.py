"""The four experiment stages (initial investigation, tuning, research agenda, ablations): next issue."""
