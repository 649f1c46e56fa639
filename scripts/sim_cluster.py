"""A simulated multi-machine Ray cluster on this machine, for trying cluster=ray without a cluster.

    python scripts/sim_cluster.py --machines 2 --cpus 1 --gpus 0
    # then, in another shell, the command it prints:
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 python -m engine.launch +topic=grokking cluster=ray \
        cluster.address=127.0.0.1:PORT cluster.slots=2

Each simulated machine is a separate Ray node (its own raylet and object store), all on loopback:
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray keep every address on 127.0.0.1 instead of the machine's
network address. Ctrl-C stops them.
"""
import argparse
import os
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported: loopback only

from ray.cluster_utils import Cluster  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--machines", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=1, help="CPUs each machine declares")
    ap.add_argument("--gpus", type=int, default=0, help="logical GPUs each machine declares")
    args = ap.parse_args()
    # every simulated machine listens on loopback only
    node = {"num_cpus": args.cpus, "num_gpus": args.gpus, "node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    for _ in range(args.machines - 1):
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    print(f"simulated cluster of {args.machines} machines at {cluster.address}\nrun the engine on it with:\n"
          f"  RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 python -m engine.launch +topic=grokking cluster=ray "
          f"cluster.address={cluster.address} cluster.slots={args.machines * args.cpus}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        cluster.shutdown()


if __name__ == "__main__":
    main()
