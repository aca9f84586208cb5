"""The toy Libra of the training chapters' checks (12a_stages .. 12d_train): read and `exec`ed by them, and
written into the two-process script of 12d_train. Not part of the package."""
import torch, torch.nn as nn
from collections import OrderedDict
from types import SimpleNamespace

class ToyLibra(nn.Module):
    "Libra in miniature: frozen encoder -> projector fusing (current, prior) -> language model."
    def __init__(self, d_in=6, d=16, n_out=4):
        super().__init__()
        self.vision_tower = nn.Linear(d_in, d)
        self.mm_projector = nn.Sequential(nn.Linear(2*d, d), nn.GELU(), nn.Dropout(0.1), nn.LayerNorm(d))
        self.language_model = nn.Sequential(OrderedDict(q_proj=nn.Linear(d, d), act=nn.GELU(), norm=nn.LayerNorm(d),
                                                        lm_head=nn.Linear(d, n_out)))
        self.seen = []  # sample ids this process trained on
    def forward(self, pixel_values, labels=None, idx=None):
        if self.training and idx is not None: self.seen += idx.tolist()
        cur, prior = self.vision_tower(pixel_values).unbind(1)
        logits = self.language_model(self.mm_projector(torch.cat([cur, prior], -1)))
        return SimpleNamespace(loss=None if labels is None else nn.functional.cross_entropy(logits, labels), logits=logits)

class ToyData(torch.utils.data.Dataset):
    "(current, prior) feature pairs whose class is a fixed function of both."
    def __init__(self, n=64, d_in=6, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 2, d_in, generator=g)
        self.y = (self.x.flatten(1) @ torch.randn(2*d_in, 4, generator=g)).argmax(-1)
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return dict(pixel_values=self.x[i], labels=self.y[i], idx=torch.tensor(i))
