"""Where and how nodes run: the driver's one submit/wait/record loop (driver.py), the executors that hold the
slots (executor.py in this process, ray_executor.py on a Ray cluster, cluster.py choosing and starting one), and
what a runner does with one node (node_exec.py: stage its files, run it in the sandbox, collect its results)."""
