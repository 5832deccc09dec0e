"""What a user writes by hand for `nnexp experiment=fish_linreg`: one file, the same training (Weight
from Height and Width, z-scored on the training rows, 50 test rows, SGD lr 0.05 with a cosine schedule,
batch 16, 100 epochs), the same final metrics printed, nothing saved.

    python benchmarks/hand/fish_linreg.py /path/to/Fish.csv
"""

import sys

import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch import nn

EPOCHS, BATCH = 100, 16
torch.manual_seed(0)
table = pd.read_csv(sys.argv[1])
x = torch.tensor(table[["Height", "Width"]].to_numpy(), dtype=torch.float32)
y = torch.tensor(table[["Weight"]].to_numpy(), dtype=torch.float32)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=50, random_state=42)
x_mean, x_std, y_mean, y_std = x_train.mean(0), x_train.std(0), y_train.mean(0), y_train.std(0)
x_train, x_test = (x_train - x_mean) / x_std, (x_test - x_mean) / x_std
y_train, y_test = (y_train - y_mean) / y_std, (y_test - y_mean) / y_std

model = nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
for epoch in range(1, EPOCHS + 1):
    order = torch.randperm(len(y_train))
    total = 0.0
    for start in range(0, len(y_train), BATCH):
        index = order[start : start + BATCH]
        optimizer.zero_grad()
        loss = F.mse_loss(model(x_train[index]), y_train[index])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
    schedule.step()
    if epoch % 10 == 0:
        print(f"epoch {epoch}: train mse {total / len(y_train):.4f}")

with torch.no_grad():
    print(f"train: mse {F.mse_loss(model(x_train), y_train).item():.4f}")
    print(f"test: mse {F.mse_loss(model(x_test), y_test).item():.4f}")
