"""What a user writes by hand for nnexp's digits MLP runs: one file, the same training, the same final
metrics printed, nothing saved. The end-to-end benchmark (benchmarks/end_to_end.py) times it against
`nnexp` as whole processes.

    python benchmarks/hand/digits_mlp.py                                   # = nnexp (the default run)
    python benchmarks/hand/digits_mlp.py --hidden 64 --dropout 0 --activation tanh --optim sgd \
        --lr 0.001 --momentum 0.9 --batch-size full --epochs 2000         # = seed 004's long run
"""

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
parser.add_argument("--dropout", type=float, default=0.3)
parser.add_argument("--activation", default="relu", choices=("relu", "tanh"))
parser.add_argument("--optim", default="adam", choices=("adam", "sgd"))
parser.add_argument("--lr", type=float, default=0.001)
parser.add_argument("--momentum", type=float, default=0.0)
parser.add_argument("--batch-size", default="32")
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.seed)
digits = load_digits()
x = torch.tensor(digits.images, dtype=torch.float32).reshape(-1, 64) / 16
y = torch.tensor(digits.target)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=1234)
x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=0.1, random_state=1234)
batch = len(y_train) if args.batch_size == "full" else int(args.batch_size)

layers, width = [], 64
for hidden in args.hidden:
    layers += [nn.Linear(width, hidden), nn.ReLU() if args.activation == "relu" else nn.Tanh()]
    layers += [nn.Dropout(args.dropout)] if args.dropout else []
    width = hidden
model = nn.Sequential(*layers, nn.Linear(width, 10))
if args.optim == "adam":
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
else:
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)


def evaluate(inputs, targets):
    model.eval()
    with torch.no_grad():
        logits = model(inputs)
        return F.cross_entropy(logits, targets).item(), (logits.argmax(1) == targets).float().mean().item()


for epoch in range(1, args.epochs + 1):
    model.train()
    order = torch.randperm(len(y_train))
    total_loss, correct = 0.0, 0
    for start in range(0, len(y_train), batch):
        index = order[start : start + batch]
        optimizer.zero_grad()
        logits = model(x_train[index])
        loss = F.cross_entropy(logits, y_train[index])
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(index)
        correct += (logits.argmax(1) == y_train[index]).sum().item()
    val_loss, val_accuracy = evaluate(x_val, y_val)
    if epoch == 1 or epoch == args.epochs or epoch % max(1, args.epochs // 10) == 0:
        train_loss, train_accuracy = total_loss / len(y_train), correct / len(y_train)
        print(f"epoch {epoch}: train loss {train_loss:.4f} accuracy {train_accuracy:.4f} "
              f"| val loss {val_loss:.4f} accuracy {val_accuracy:.4f}")  # fmt: skip

for name, inputs, targets in (("train", x_train, y_train), ("val", x_val, y_val), ("test", x_test, y_test)):
    loss, accuracy = evaluate(inputs, targets)
    print(f"{name}: loss {loss:.4f} accuracy {accuracy:.4f}")
