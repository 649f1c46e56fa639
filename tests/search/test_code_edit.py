import ast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from search.code_edit import find_tunables, numeric_tunables, set_values

PROGRAM = '''"""doc"""
import argparse
LR = 1e-3  # learning rate
NAME: str = "héllo"
parser = argparse.ArgumentParser()
parser.add_argument("--out_dir", type=str, default="run_0")
parser.add_argument("--num-steps", type=int, default=100)
parser.add_argument("--offset", type=float, default=-0.5)
SEED = 3

def train(batch_size=32, *, dropout=0.1, LR=5):
    return batch_size
'''


def test_finds_argparse_constants_and_parameters():
    t = find_tunables(PROGRAM)
    assert t["num_steps"].value == 100 and t["num_steps"].where == "argparse"
    assert t["offset"].value == -0.5
    assert t["LR"].value == 1e-3 and t["LR"].where == "constant"  # constant beats the parameter LR=5
    assert t["batch_size"].value == 32 and t["dropout"].value == 0.1
    assert t["NAME"].value == "héllo"
    assert "SEED" not in numeric_tunables(PROGRAM) and "out_dir" not in numeric_tunables(PROGRAM)


def test_set_values_keeps_comments_and_stays_valid():
    new = set_values(PROGRAM, {"LR": 0.02, "num_steps": 7, "offset": 1.0, "dropout": 0.0})
    t = find_tunables(new)
    assert (t["LR"].value, t["num_steps"].value, t["offset"].value, t["dropout"].value) == (0.02, 7, 1.0, 0.0)
    assert "# learning rate" in new and '"""doc"""' in new
    assert new.count("\n") == PROGRAM.count("\n")


def test_unknown_name_is_an_error():
    with pytest.raises(KeyError, match="no hyperparameter named nope"):
        set_values(PROGRAM, {"nope": 1})


@given(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False)))
def test_any_number_round_trips(value):
    new = set_values(PROGRAM, {"num_steps": value})
    ast.parse(new)
    assert find_tunables(new)["num_steps"].value == value
