"""Toy world: determinism, unique referents, exact masks, sounds, sizes."""

import numpy as np
import pytest

from anyref_ros.data import EVAL_SEED, TRAIN_SEED_BASE, Sample, ToyDataset, ToyWorld, train_seed
from anyref_ros.data.toy import text_expressions
from anyref_ros.data.toy_audio import SAMPLE_RATE, shape_sound
from anyref_ros.data.toy_render import (
    COLOURS, ToyObject, object_mask, place_objects, render_exemplar, render_scene, shape_mask,
)

N = 120


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    world = ToyWorld(seed=7)
    return [world.sample(i) for i in range(N)]


def _same(a: Sample, b: Sample) -> bool:
    arrays = ("image", "exemplar", "exemplar_mask", "audio")
    for name in arrays:
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None) or (x is not None and not np.array_equal(x, y)):
            return False
    return (a.task, a.answer, a.query, a.box, a.metadata) == (b.task, b.answer, b.query, b.box, b.metadata) \
        and len(a.masks) == len(b.masks) and all(np.array_equal(m, n) for m, n in zip(a.masks, b.masks))


def test_deterministic_per_seed_and_index():
    a, b = ToyWorld(3), ToyWorld(3)
    for i in (0, 5, 17):
        assert _same(a.sample(i), b.sample(i))
    assert _same(a.sample(5), a.sample(5))  # order of calls does not matter
    assert not np.array_equal(a.sample(0).image, ToyWorld(4).sample(0).image)
    assert not np.array_equal(a.sample(0).image, a.sample(1).image)


def test_held_out_seed_constants():
    assert EVAL_SEED == 0 and TRAIN_SEED_BASE == 1000
    assert train_seed(0) == 1000 and train_seed(5) == 1005
    with pytest.raises(ValueError):
        train_seed(-1)


def test_all_tasks_appear_and_forced_task(samples):
    assert {s.task for s in samples} == {"text", "exemplar", "audio", "region"}
    world = ToyWorld(7)
    for task in ("text", "exemplar", "audio", "region"):
        assert world.sample(3, task=task).task == task
    only_text = ToyWorld(1, task_weights={"text": 1.0})
    assert {only_text.sample(i).task for i in range(20)} == {"text"}
    with pytest.raises(ValueError):
        ToyWorld(1, task_weights={"speech": 1.0})


def test_scene_objects_and_masks(samples):
    for s in samples:
        objs = s.metadata["objects"]
        assert 2 <= len(objs) <= 4
        assert len({(o["colour"], o["shape"]) for o in objs}) == len(objs)
        h, w = s.image.shape[:2]
        assert (w, h) == (160, 120)
        union = np.zeros((h, w), dtype=bool)
        for o in objs:
            m = object_mask(ToyObject(o["shape"], o["colour"], tuple(o["rgb"]), o["x0"], o["y0"], o["size"]), (w, h))
            assert not (union & m).any()
            union |= m
            x0, y0, x1, y1 = o["box"]
            assert 0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h
            assert 16 <= o["size"] <= 40
        target = objs[s.metadata["target"]]
        assert len(s.masks) == 1 and s.mask.sum() > 0
        ys, xs = np.nonzero(s.mask)
        assert (xs.min(), ys.min(), xs.max(), ys.max()) == tuple(target["box"])
        # painted pixels carry the object's colour (noise sigma 8), not the grey background
        mean = s.image[s.mask].mean(axis=0)
        assert np.abs(mean - np.array(target["rgb"])).max() < 4


def test_referents_are_unique(samples):
    for s in samples:
        objs = s.metadata["objects"]
        t = objs[s.metadata["target"]]
        if s.task == "text":
            q = s.query
            if q.endswith(" object"):
                hits = [o for o in objs if o["colour"] == q.split()[0]]
            elif " " in q:
                hits = [o for o in objs if f"{o['colour']} {o['shape']}" == q]
            else:
                hits = [o for o in objs if o["shape"] == q]
            assert hits == [t], (q, objs)
            assert s.answer == f"{q}[SEG]."
        elif s.task in ("audio", "exemplar"):
            assert [o for o in objs if o["shape"] == t["shape"]] == [t]
            assert s.answer == f"{t['shape']}[SEG]."
        else:
            assert s.box == tuple(t["box"])
            assert s.answer == f"{t['colour']} {t['shape']}[SEG]."


def test_text_expression_forms():
    a = ToyObject("circle", "red", (220, 40, 40), 0, 0, 20)
    b = ToyObject("circle", "blue", (40, 70, 220), 30, 0, 20)
    c = ToyObject("square", "red", (220, 40, 40), 60, 0, 20)
    assert text_expressions(a, [a, b, c]) == ["red circle"]
    assert text_expressions(b, [a, b, c]) == ["blue circle", "blue object"]
    assert text_expressions(c, [a, b, c]) == ["red square", "square"]


def test_seg_token_is_a_parameter():
    s = ToyWorld(2, seg_token="<obj>").sample(0, task="region")
    assert s.answer.endswith("<obj>.") and "[SEG]" not in s.answer


def test_shape_masks():
    sq = shape_mask("square", 10)
    assert sq.all()
    tri = shape_mask("triangle", 20)
    assert tri[-1].sum() >= 18 and tri[0].sum() <= 2  # base at the bottom, apex at top
    assert np.all(np.diff(tri.sum(axis=1)) >= 0)
    circle = shape_mask("circle", 30)
    assert abs(circle.sum() - np.pi * 15**2) < 0.03 * np.pi * 15**2
    assert np.array_equal(circle, circle.T) and np.array_equal(circle, circle[::-1])


def test_exemplar(samples):
    ex = [s for s in samples if s.task == "exemplar"]
    assert ex
    for s in ex:
        assert s.exemplar.dtype == np.uint8 and s.exemplar.shape[:2] == s.exemplar_mask.shape
        assert (s.exemplar[~s.exemplar_mask] == 0).all()
        assert s.exemplar_mask.sum() > 0
    crop, mask = render_exemplar(np.random.default_rng(0), "triangle", "green", 24)
    assert crop.shape == (28, 28, 3) and np.array_equal(mask[2:26, 2:26], shape_mask("triangle", 24))


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def test_sound_signatures():
    rng = np.random.default_rng(0)
    circle = shape_sound(rng, "circle")
    square = shape_sound(rng, "square")
    chirp = shape_sound(rng, "triangle")
    for x in (circle, square, chirp):
        assert x.dtype == np.float32 and x.shape == (2 * SAMPLE_RATE,)
        assert np.abs(x).max() < 1.5
    assert abs(_peak_hz(circle, SAMPLE_RATE) - 440) < 2
    assert abs(_peak_hz(square, SAMPLE_RATE) - 220) < 2
    # chirp: energy in 300..1200 Hz; frequency rises within each second, then restarts
    power = np.abs(np.fft.rfft(chirp)) ** 2
    freqs = np.fft.rfftfreq(len(chirp), 1 / SAMPLE_RATE)
    assert power[(freqs >= 290) & (freqs <= 1210)].sum() > 0.8 * power.sum()
    win = SAMPLE_RATE // 10
    early = [_peak_hz(chirp[s:s + win], SAMPLE_RATE) for s in (0, SAMPLE_RATE)]
    late = [_peak_hz(chirp[s - win:s], SAMPLE_RATE) for s in (SAMPLE_RATE, 2 * SAMPLE_RATE)]
    assert all(300 <= f <= 420 for f in early) and all(1050 <= f <= 1210 for f in late)


def test_sound_snr_and_amplitude():
    x = shape_sound(np.random.default_rng(1), "circle", seconds=3.0)
    assert x.shape == (3 * SAMPLE_RATE,)
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    tone = spectrum[np.abs(freqs - 440) < 3].sum()
    snr = 10 * np.log10(tone / (spectrum.sum() - tone))
    assert 9 < snr < 11
    amplitude = 2 * np.abs(np.fft.rfft(x)).max() / len(x)  # 440 Hz falls on a bin of a 3 s clip
    assert 0.29 < amplitude < 0.81


def test_audio_samples_match_target_shape(samples):
    for s in samples:
        if s.task == "audio":
            shape = s.metadata["objects"][s.metadata["target"]]["shape"]
            peak = _peak_hz(s.audio, s.sample_rate)
            expected = {"circle": (435, 445), "square": (215, 225), "triangle": (290, 1210)}[shape]
            assert expected[0] <= peak <= expected[1]


def test_large_image_scales_shapes():
    s = ToyWorld(0, size=(640, 480)).sample(1)
    assert s.image.shape == (480, 640, 3)
    for o in s.metadata["objects"]:
        assert 64 <= o["size"] <= 160
    fixed = ToyWorld(0, size=(640, 480), size_range=(16, 40)).sample(1)
    assert all(16 <= o["size"] <= 40 for o in fixed.metadata["objects"])


def test_render_chosen_objects():
    rng = np.random.default_rng(5)
    objs = place_objects(rng, [("red", "circle"), ("blue", "triangle"), ("yellow", "square")], (320, 240))
    image, masks = render_scene(objs, (320, 240), rng)
    assert image.shape == (240, 320, 3) and len(masks) == 3
    for o, m in zip(objs, masks):
        assert np.abs(image[m].mean(axis=0) - np.array(o.rgb)).max() < 4
        assert all(abs(a - b) <= 25 for a, b in zip(o.rgb, COLOURS[o.colour]))
    with pytest.raises(ValueError):
        place_objects(rng, [("red", "circle")] * 40, (64, 48))


def test_dataset_wrapper():
    ds = ToyDataset(ToyWorld(9), length=5, task="audio", offset=10)
    assert len(ds) == 5 and ds[0].task == "audio"
    assert _same(ds[2], ToyWorld(9).sample(12, task="audio"))
    with pytest.raises(IndexError):
        ds[5]


def test_torch_dataloader_accepts_the_dataset():
    torch_data = pytest.importorskip("torch.utils.data")
    loader = torch_data.DataLoader(ToyDataset(ToyWorld(2), length=6), batch_size=3, collate_fn=list)
    batches = list(loader)
    assert [len(b) for b in batches] == [3, 3] and all(isinstance(s, Sample) for s in batches[0])


def test_make_scene_for_demos():
    from anyref_ros.data import make_scene

    image, masks, objects = make_scene([("red", "circle"), ("green", "triangle")], (640, 480), seed=4)
    assert image.shape == (480, 640, 3) and [o.name for o in objects] == ["red circle", "green triangle"]
    assert all(64 <= o.size <= 160 for o in objects) and all(m.any() for m in masks)
    again, _, _ = make_scene([("red", "circle"), ("green", "triangle")], (640, 480), seed=4)
    assert np.array_equal(image, again)


# ---------------------------------------------------------------- absent objects, sound windows
from anyref_ros.data.toy import NO_OBJECT_ANSWER, absent_expression  # noqa: E402
from anyref_ros.data.toy_audio import LAYOUTS, SoundLayout, get_layout, windowed_sound  # noqa: E402


def _digest(s: Sample) -> str:
    import hashlib

    h = hashlib.sha256()
    for part in (s.image.tobytes(), s.mask.tobytes(), s.answer.encode(), str(s.query).encode()):
        h.update(part)
    return h.hexdigest()[:16]


def test_defaults_give_the_samples_they_always_gave():
    """The held-out evaluation set (scenes, masks, answers, queries) is the one
    the first model/toy was scored on: the new options draw nothing unless used."""
    world = ToyWorld(EVAL_SEED)
    assert [_digest(world.sample(i)) for i in range(4)] == [
        "7cce629512799d12", "cfb6f88f14d0ac8a", "eadb34a0c9fc2a86", "2038d40e4e78e63f"]
    explicit = ToyWorld(EVAL_SEED, absent_rate=0.0, sound_layout="onset")
    for i in range(12):
        for task in ("text", "audio"):
            assert _same(world.sample(i, task), explicit.sample(i, task, absent=False))


def test_absent_object_queries():
    from anyref_ros.model.prompts import NO_OBJECT_ANSWER as MODEL_REPLY

    assert NO_OBJECT_ANSWER == MODEL_REPLY
    world = ToyWorld(11, absent_rate=0.2, task_weights={"text": 1.0})
    drawn = [world.sample(i) for i in range(300)]
    absent = [s for s in drawn if s.metadata.get("absent")]
    assert 0.12 < len(absent) / len(drawn) < 0.28
    kinds = set()
    for s in absent:
        objects = [(o["colour"], o["shape"]) for o in s.metadata["objects"]]
        words = s.query.split()
        assert s.answer == NO_OBJECT_ANSWER and "[SEG]" not in s.answer
        assert s.masks == [] and not s.mask.any() and s.description is None
        if len(words) == 1:  # a shape nobody has
            assert all(shape != words[0] for _, shape in objects)
            kinds.add("shape")
        elif words[1] == "object":  # a colour nobody has
            assert all(colour != words[0] for colour, _ in objects)
            kinds.add("colour")
        else:  # a pair not in the scene
            assert (words[0], words[1]) not in objects
            kinds.add("pair")
    assert kinds == {"shape", "colour", "pair"}
    # forced: same scene as the normal sample of that index
    normal, forced = ToyWorld(5).sample(3, "text"), ToyWorld(5).sample(3, "text", absent=True)
    assert np.array_equal(normal.image, forced.image) and forced.metadata["absent"]
    assert ToyWorld(5, absent_answer="nothing here.").sample(3, "text", absent=True).answer == "nothing here."
    for bad in ({"absent_rate": 1.5}, {"absent_answer": "x[SEG]."}, {"absent_answer": " "}):
        with pytest.raises(ValueError):
            ToyWorld(1, **bad)


def test_absent_expression_always_names_nothing():
    rng = np.random.default_rng(0)
    objects = place_objects(rng, [("red", "circle"), ("blue", "square"), ("green", "triangle"),
                                  ("yellow", "circle")], (160, 120), (16, 40))
    for _ in range(50):  # every shape and colour present: only pairs are possible
        words = absent_expression(rng, objects).split()
        assert len(words) == 2 and words[1] != "object"
        assert (words[0], words[1]) not in {(o.colour, o.shape) for o in objects}


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_windowed_sound_layout():
    rate = SAMPLE_RATE
    layout = SoundLayout(lead_in=(0.3, 0.5), aligned_prob=0.0, late_prob=0.0, duration=(0.8, 1.0),
                         hum_prob=0.0)
    for seed in range(5):
        clip, facts = windowed_sound(np.random.default_rng(seed), "circle", layout)
        assert clip.dtype == np.float32 and clip.shape == (2 * rate,)
        onset, end = facts["onset"], facts["onset"] + facts["duration"]
        assert 0.3 <= onset <= 0.5 and 0.8 <= facts["duration"] <= 1.0
        lead = clip[: int((onset - 0.01) * rate)]
        sound = clip[int((onset + 0.02) * rate): int((end - 0.02) * rate)]
        tail = clip[int((end + 0.01) * rate):]
        assert _rms(lead) < 0.03 and _rms(tail) < 0.03  # quiet room
        assert _rms(sound) > 0.2  # amplitude >= 0.3 sine
        assert abs(_peak_hz(sound, rate) - 440) < 5
    # late start: the sound is already on at the first sample
    late = SoundLayout(aligned_prob=0.0, late_prob=1.0, late_max=0.1, duration=(2.0, 2.0), hum_prob=0.0)
    clip, facts = windowed_sound(np.random.default_rng(1), "square", late)
    assert -0.1 <= facts["onset"] <= 0 and _rms(clip[:800]) > 0.2
    # onset-aligned: the sound fills the clip
    aligned = SoundLayout(aligned_prob=1.0, late_prob=0.0)
    clip, facts = windowed_sound(np.random.default_rng(2), "triangle", aligned)
    assert facts["onset"] == 0.0 and facts["duration"] == 2.0 and _rms(clip[-800:]) > 0.2


def test_room_hum_is_50_hz():
    layout = SoundLayout(lead_in=(0.6, 0.6), aligned_prob=0.0, late_prob=0.0, duration=(0.8, 0.8),
                         room_rms=(0.0, 0.0), hum_prob=1.0, hum_amplitude=(0.05, 0.05))
    clip, facts = windowed_sound(np.random.default_rng(3), "circle", layout)
    assert facts["hum"]
    assert abs(_peak_hz(clip[: int(0.6 * SAMPLE_RATE)], SAMPLE_RATE) - 50) < 3


def test_sound_layouts_by_name_and_in_the_world():
    assert get_layout(None) is None and get_layout("onset") is None
    assert get_layout("train") is LAYOUTS["train"] and LAYOUTS["offset"].late_prob == 0.0
    assert get_layout({"lead_in": [0.1, 0.2]}).lead_in == (0.1, 0.2)
    for bad in ("nope", {"lead_in": (0.5, 0.1)}, {"late_prob": 2.0}, {"aligned_prob": 0.6, "late_prob": 0.6}, 3):
        with pytest.raises((ValueError, TypeError)):
            get_layout(bad)
    world = ToyWorld(4, sound_layout="offset")
    for i in range(6):
        s = world.sample(i, "audio")
        assert s.audio.shape == (2 * SAMPLE_RATE,) and 0.0 <= s.metadata["sound"]["onset"] <= 0.5
    assert "sound" not in ToyWorld(4).sample(0, "audio").metadata
