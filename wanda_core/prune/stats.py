"""Input statistics of a block's Linears, gathered by forward hooks during a pass over the block:
Wanda's mean x_j^2, SparseGPT's H = 2/n sum x x^T, DSnoT's per-window moments."""
from __future__ import annotations

import torch
from torch import nn

from wanda_core.prune.blocks import Stop
from wanda_core.prune.refine import accumulate_moments
from wanda_core.prune.scores import LayerStats


class BlockStats:
    """Input statistics of a block's Linears, gathered once per distinct input tensor: Linears fed
    the very same tensor (q/k/v, gate/up) share one accumulator (float32 running means, so long
    calibration sets never overflow): Wanda's mean x_j^2 and/or SparseGPT's H = 2/n sum x x^T, and
    DSnoT's per-window moments when `need_moments`.

    `stop_block`: the hooks read each Linear's input before it runs, so once the first batch through
    this block has shown which Linear runs last, later batches end at its input (Stop): its matrix
    product and whatever follows it (a quarter of a Llama block's flops: down_proj) are never needed
    for statistics. Only for passes whose outputs are discarded."""

    def __init__(self, linears: dict[str, nn.Linear], need_sq: bool, need_h: bool, need_moments: bool = False,
                 stop_block: nn.Module | None = None):
        self.need_sq, self.need_h, self.need_moments = need_sq, need_h, need_moments
        self.stats: dict[str, LayerStats] = {}
        self.follows: dict[str, bool] = {}  # True: reads the input of the Linear called just before
        self._last: tuple[torch.Tensor, LayerStats] | None = None
        self._called_last: str | None = None  # the Linear called most recently
        self._calls: dict[str, int] = {}  # calls per Linear in the first batch
        self._stop_at: str | None = None  # the last Linear of a batch, known once a batch has run
        self.handles = [layer.register_forward_pre_hook(self._hook(name)) for name, layer in linears.items()]
        if stop_block is not None:
            self.handles.append(stop_block.register_forward_pre_hook(self._batch_begins))

    def _batch_begins(self, _mod, _args):
        # a batch has run through: its last Linear is where to stop, unless some Linear was called
        # twice in it (a shared module: its first call would end the pass too early)
        if self._called_last is not None and self._stop_at is None and set(self._calls.values()) == {1}:
            self._stop_at = self._called_last

    def _hook(self, name: str):
        def hook(_mod, inp):
            x = inp[0]
            self._called_last = name
            if self._stop_at is None:
                self._calls[name] = self._calls.get(name, 0) + 1
            follows = self._last is not None and x is self._last[0]
            if self.follows.setdefault(name, follows) != follows:
                raise RuntimeError(f"{name} shared its input with the previous Linear in one batch but not another")
            if follows:
                self.stats[name] = self._last[1]
            else:
                if name not in self.stats:
                    self.stats[name] = self._new(x)
                self._accumulate(self.stats[name], x)
                self._last = (x, self.stats[name])  # holding x keeps its identity unique during the pass
            if name == self._stop_at:
                self._last = None
                raise Stop
        return hook

    def _new(self, x: torch.Tensor) -> LayerStats:
        n_in, dev = x.shape[-1], x.device
        st = LayerStats()
        if self.need_sq:
            st.input_sq_mean = torch.zeros(n_in, dtype=torch.float32, device=dev)
        if self.need_h:
            st.hessian = torch.zeros(n_in, n_in, dtype=torch.float32, device=dev)
        return st

    def _accumulate(self, st: LayerStats, x: torch.Tensor) -> None:
        if self.need_moments:  # DSnoT's per-window moments need the window axis
            accumulate_moments(st, x)
        x = x.detach().reshape(-1, x.shape[-1]).float()  # no copy in float32
        n, t = st.tokens, x.shape[0]
        keep = n / (n + t)
        if self.need_sq:
            st.input_sq_mean.mul_(keep).add_(x.pow(2).sum(0), alpha=1 / (n + t))
        if self.need_h:
            add_gram_upper(st.hessian, x, 2 / (n + t), keep)
        st.tokens = n + t

    def close(self, mirror: bool = True) -> dict[str, LayerStats]:
        """The statistics per Linear. `mirror=False` leaves each Hessian's lower triangle as it is
        (not the Hessian's): for SparseGPT, whose inverse_hessian_cholesky reads only the upper one."""
        for h in self.handles:
            h.remove()
        self._last = None
        if self.need_h and mirror:  # only the upper block triangle was accumulated: mirror it, once per input
            for st in {id(st): st for st in self.stats.values()}.values():
                st.hessian.copy_(st.hessian.triu() + st.hessian.triu(1).t())
        return self.stats


def add_gram_upper(H: torch.Tensor, x: torch.Tensor, alpha: float, beta: float = 1.0, parts: int = 4) -> None:
    """H = beta H + alpha x^T x on the upper block triangle only (row blocks against the columns
    from their diagonal on): 5/8 of the multiply-adds of the full product for 4 parts, and beta
    applied inside the same products. Only the upper triangle is ever read (BlockStats.close
    mirrors it where a caller may read the whole matrix). Tried, not kept: 8 parts (no faster: the
    products get thinner); scipy's ssyrk (half the multiply-adds, but its OpenBLAS threads fight
    torch's for the 2 cores: slower in the engine)."""
    d = x.shape[1]
    step = -(-d // parts)
    xt = x.t()
    for i in range(0, d, step):
        H[i : i + step, i:].addmm_(xt[i : i + step], x[:, i:], beta=beta, alpha=alpha)
