"""One torch thread for the training the tests do, so a trained model's weights do not depend on how many threads the
machine gives torch (the order of float32 sums in its kernels does)."""
from contextlib import contextmanager

import torch


@contextmanager
def one_thread():
    "Run the block with one intra-op torch thread, restoring the previous count afterwards."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try: yield
    finally: torch.set_num_threads(n)
