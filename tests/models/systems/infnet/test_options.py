"""InfNet task options as ``--opt key=value`` gives them: typos and bad values are refused."""

from __future__ import annotations

import pytest

from models.base import OptionError, get_model
from models.systems.infnet.task import InfNetTask
from models.train import parse_opts, split_opts

# Options are parsed before the lake is read, so no lake is needed.
LAKE = "/nonexistent/lake"


def _task_from_command_line(*pairs: str, model: str = "infnet") -> InfNetTask:
    """The task as the trainer builds it from ``--opt`` pairs (model fields go to the model)."""
    _, task_opts = split_opts(get_model("infnet", model), parse_opts(pairs))
    return InfNetTask(LAKE, None, **task_opts)


def test_unknown_key_names_it_and_lists_the_valid_ones():
    with pytest.raises(OptionError) as err:
        _task_from_command_line("eval_batch=256", "hidden=8")
    message = str(err.value)
    assert "task 'infnet' has no option 'eval_batch'; valid task options: eval_batch_size;" \
        in message
    assert "model options are those of the model's Config" in message
    assert "infnet: InfNet.Config" in message and "lr: LogisticRegressionBaseline.Config" in message


def test_model_option_of_another_model_is_a_task_typo():
    # ``hidden`` is an InfNet field, not LR's: with --model lr it is left to the task, which
    # refuses it rather than train LR while ignoring it.
    assert _task_from_command_line("hidden=8").options.eval_batch_size == 1024
    with pytest.raises(OptionError, match="no option 'hidden'"):
        _task_from_command_line("hidden=8", model="lr")


def test_bad_value_names_the_key_and_the_expected_type():
    with pytest.raises(OptionError, match="eval_batch_size='abc': expected int"):
        _task_from_command_line("eval_batch_size=abc")
    with pytest.raises(OptionError, match="eval_batch_size must be >= 1"):
        _task_from_command_line("eval_batch_size=0")


def test_good_value_reaches_the_task_with_its_type():
    task = _task_from_command_line("eval_batch_size=256")
    assert task.options.eval_batch_size == 256 and isinstance(task.options.eval_batch_size, int)
    assert _task_from_command_line().options.eval_batch_size == 1024
