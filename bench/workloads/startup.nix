# Start-up: the smallest evaluation.
1
