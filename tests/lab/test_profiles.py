import pytest

from linattn.lab.profiles import PROFILES, get_profile


def test_environment_variable_selects_the_profile(monkeypatch):
    for name in ("ci", "cpu", "gpu"):
        monkeypatch.setenv("LINATTN_PROFILE", name)
        assert get_profile().name == name


def test_default_follows_the_device(monkeypatch):
    monkeypatch.delenv("LINATTN_PROFILE", raising=False)
    assert get_profile(device="cpu").name == "cpu"
    assert get_profile(device="cuda").name == "gpu"


def test_explicit_name_wins(monkeypatch):
    monkeypatch.setenv("LINATTN_PROFILE", "gpu")
    assert get_profile("ci").name == "ci"


def test_unknown_profile_is_a_value_error(monkeypatch):
    monkeypatch.setenv("LINATTN_PROFILE", "huge")
    with pytest.raises(ValueError, match="huge"):
        get_profile()


def test_gpu_profile_is_the_blogs_setup_and_says_so():
    gpu = PROFILES["gpu"]
    assert (gpu.batch, gpu.dim, gpu.repeats) == (32, 64, 100)
    assert min(gpu.seq_lens) == 128 and max(gpu.seq_lens) == 6000
    assert "blog" in gpu.description and "original" not in gpu.description


@pytest.mark.parametrize("profile", PROFILES.values(), ids=list(PROFILES))
def test_profiles_are_ordered_and_sliders_lie_on_the_sweep(profile):
    assert list(profile.seq_lens) == sorted(profile.seq_lens)
    assert set(profile.slider_lens) <= set(profile.seq_lens)


def test_ci_is_the_smallest():
    ci, cpu = PROFILES["ci"], PROFILES["cpu"]
    assert max(ci.seq_lens) <= max(cpu.seq_lens) and ci.batch <= cpu.batch and ci.repeats <= cpu.repeats
