#!/usr/bin/python3
"""Optional PyTorch baseline for `npm run bench` (skipped when torch is missing).

Usage: /usr/bin/python3 bench/torch_baseline.py TRAIN.csv TEST.csv
Prints JSON: seconds for 300 epochs of the seed setup (SimpleNN 10→50→Dropout(0.3)→1, Adam 1e-3,
wd 1e-4, batch 32, standardised X and y, 1 thread), steps, test RMSE, and the MC timings
(a loop of 100 model.train() forward passes on one row; one tiled batch of 100 rows).
"""
import json
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
torch.manual_seed(0)


def load(path):
    data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64)
    return data[:, :-1], data[:, -1]


xtr, ytr = load(sys.argv[1])
xte, yte = load(sys.argv[2])
xm, xs = xtr.mean(0), xtr.std(0)
ym, ys = ytr.mean(), ytr.std()
Xtr = torch.tensor((xtr - xm) / xs, dtype=torch.float32)
Ytr = torch.tensor((ytr - ym) / ys, dtype=torch.float32).unsqueeze(1)
Xte = torch.tensor((xte - xm) / xs, dtype=torch.float32)


class SimpleNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(10, 50)
        self.drop = torch.nn.Dropout(0.3)
        self.fc2 = torch.nn.Linear(50, 1)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


model = SimpleNN()
opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
loss_fn = torch.nn.MSELoss()
n = Xtr.shape[0]
steps = 0
t0 = time.perf_counter()
for epoch in range(300):
    model.train()
    perm = torch.randperm(n)
    for i in range(0, n, 32):
        idx = perm[i:i + 32]
        opt.zero_grad()
        loss = loss_fn(model(Xtr[idx]), Ytr[idx])
        loss.backward()
        opt.step()
        steps += 1
train_s = time.perf_counter() - t0
model.eval()
with torch.no_grad():
    pred = model(Xte).squeeze(1).numpy() * ys + ym
rmse = float(np.sqrt(np.mean((pred - yte) ** 2)))

row = Xte[:1]
model.train()
with torch.no_grad():
    for _ in range(20):
        model(row)
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        for _ in range(100):
            model(row)
    loop_us = (time.perf_counter() - t0) / reps * 1e6
    tiled = row.repeat(100, 1)
    t0 = time.perf_counter()
    for _ in range(reps * 10):
        model(tiled)
    tiled_us = (time.perf_counter() - t0) / (reps * 10) * 1e6

print(json.dumps({"train_seconds": train_s, "steps": steps, "rows": n, "test_rmse": rmse, "mc_loop100_us": loop_us, "mc_tiled100_us": tiled_us, "torch": torch.__version__}))
