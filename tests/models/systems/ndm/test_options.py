"""NDM task options as ``--opt key=value`` gives them: typos and bad values are refused."""

from __future__ import annotations

import pytest

from models.base import OptionError, get_model
from models.systems.ndm.task import NdmTask
from models.train import parse_opts, split_opts

# Options are parsed before the lake is read, so no lake is needed.
LAKE = "/nonexistent/lake"


def _task_from_command_line(*pairs: str, model: str = "ndm") -> NdmTask:
    """The task as the trainer builds it from ``--opt`` pairs (model fields go to the model)."""
    _, task_opts = split_opts(get_model("ndm", model), parse_opts(pairs))
    return NdmTask(LAKE, "irvine", **task_opts)


def test_unknown_key_names_it_and_lists_the_valid_ones():
    with pytest.raises(OptionError) as err:
        _task_from_command_line("temprature=0.5", "dim=16")
    message = str(err.value)
    assert "'temprature'" in message
    assert "valid task options: early, eval_batch_size, given, ks, " in message
    assert "temperature" in message and "terminate_target" in message
    assert "model options are those of the model's Config" in message
    assert "ndm: NDM.Config" in message and "lstm: LSTMBaseline.Config" in message
    # Callers that catch the KeyError of an unknown key, or a ValueError, both see it.
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    assert not message.startswith('"')  # printed as written, not as KeyError's repr


def test_eval_batch_size_is_the_name_and_eval_batch_is_refused():
    assert _task_from_command_line("eval_batch_size=8").options.eval_batch_size == 8
    with pytest.raises(OptionError, match="no option 'eval_batch';.*eval_batch_size"):
        _task_from_command_line("eval_batch=8")


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("eval_batch_size=abc", "eval_batch_size='abc': expected int"),
        ("sims=1e3", "sims='1e3': expected int"),
        ("temperature=warm", "temperature='warm': expected float"),
        ("ks=10,fifty", "ks='10,fifty': expected comma-separated list of int"),
        ("terminate_target=2", "terminate_target='2': expected bool"),
        ("size_cap=big", "size_cap='big': expected int or none"),
    ],
)
def test_bad_value_names_the_key_and_the_expected_type(pair, expected):
    with pytest.raises(OptionError, match=expected):
        _task_from_command_line(pair)


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("temperature=0", "temperature must be > 0"),
        ("terminate_bias=-inf", "terminate_bias must be finite"),
        ("eval_batch_size=0", "eval_batch_size must be >= 1"),
        ("ks=10,0", "ks must hold k >= 1"),
    ],
)
def test_out_of_range_value_is_refused(pair, message):
    with pytest.raises(ValueError, match=message):
        _task_from_command_line(pair)


def test_good_values_reach_the_task_with_their_types():
    task = _task_from_command_line(
        "ks=10,50", "temperature=0.5", "terminate_bias=-20", "terminate_target=1", "sims=200",
        "size_cap=30", "heads=2",
    )
    o = task.options
    assert o.ks == [10, 50]
    assert o.temperature == 0.5 and isinstance(o.temperature, float)
    assert o.terminate_bias == -20.0 and isinstance(o.terminate_bias, float)
    assert o.terminate_target is True
    assert o.sims == 200 and isinstance(o.sims, int)
    assert o.size_cap == 30
    # Untouched options keep their defaults: the paper's protocol (size simulations with the
    # Terminate target).
    assert (o.val_sims, o.size_sims, o.given, o.early, o.eval_batch_size) == (100, 100, 5, 5, 64)
    assert _task_from_command_line("size_cap=none").options.size_cap is None
    assert _task_from_command_line("ks=[10, 50]").options.ks == [10, 50]  # from a YAML list
    assert _task_from_command_line().options.ks == [10, 50, 100]


def test_typed_values_from_python_are_accepted():
    task = NdmTask(LAKE, "irvine", ks=[5], temperature=1, terminate_target=True, sims=10)
    assert task.options.ks == [5] and task.options.temperature == 1.0
    assert task.options.terminate_target is True and task.options.sims == 10
    with pytest.raises(OptionError, match="sims=2.5: expected int"):
        NdmTask(LAKE, "irvine", sims=2.5)


def test_options_are_per_instance():
    one = _task_from_command_line("ks=10")
    two = _task_from_command_line()
    one.options.ks.append(20)
    assert two.options.ks == [10, 50, 100]


def test_model_option_given_as_task_option_is_refused():
    # ``task.dim`` forces a model field onto the task: not one of its options.
    with pytest.raises(OptionError, match="no option 'dim'"):
        _task_from_command_line("task.dim=16")


def test_model_config_is_parsed_the_same_way():
    cls = get_model("ndm", "ndm")
    config = cls.make_config({"dim": "16", "dropout": "0", "scale_attention": "yes"})
    assert (config.dim, config.dropout, config.scale_attention) == (16, 0.0, True)
    with pytest.raises(KeyError, match="NDM.Config has no option 'dimm'; valid model options: "
                                       "dim, dropout, f_init, heads, scale_attention, win"):
        cls.make_config({"dimm": "16"})
    with pytest.raises(ValueError, match="scale_attention='ture': expected bool"):
        cls.make_config({"scale_attention": "ture"})
