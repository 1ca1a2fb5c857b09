"""Every config option composes, and the model and data nodes instantiate with no other arguments."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from conftest import CONF_DIR, TINY, compose_config
from omegaconf import OmegaConf

from internet_plus.models.backbones.registry import backbone_config, backbone_names, variant_of

BACKBONES = backbone_names()  # the backbone registry: conf/backbone/*.yaml
DATASETS = sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONF_DIR / "trainer").glob("*.yaml"))
LOGGERS = sorted(p.stem for p in (CONF_DIR / "logger").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
OPTIMIZERS = sorted(p.stem for p in (CONF_DIR / "optimizer").glob("*.yaml"))
DEBUGS = sorted(p.stem for p in (CONF_DIR / "debug").glob("*.yaml"))


def test_contract_options_exist() -> None:
    assert {"internet_plus", "internet_plus_se", "internet_plus_no_ca", "internet_plus_no_fca", "resnet50"} <= set(
        BACKBONES
    )
    assert {"synthetic", "rhd", "stb"} <= set(DATASETS)
    assert {"cpu", "gpu", "ddp", "ddp_cpu"} <= set(TRAINERS)
    assert {"wandb", "csv", "none"} <= set(LOGGERS)
    assert {"quickstart", "paper_rhd", "paper_stb", "paper_interhand", "ablation"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_instantiates_the_module(backbone: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"backbone={backbone}", *TINY], tmp_path)
    model = hydra.utils.instantiate(cfg.model)
    assert model.backbone is not None and model.posenet is not None
    assert model.posenet.in_channels == model.backbone.out_channels
    assert variant_of(cfg.model.backbone) == backbone  # the node is the registry's, recognised as such


def test_backbone_variants_set_their_fields(tmp_path: Path) -> None:
    fields = {b: compose_config("train", [f"backbone={b}"], tmp_path).model.backbone for b in BACKBONES}
    assert fields["internet_plus"].attention == "ca" and fields["internet_plus"].fca is True
    assert fields["internet_plus_se"].attention == "se"
    assert fields["internet_plus_no_ca"].attention == "none"
    assert fields["internet_plus_no_fca"].fca is False and fields["internet_plus_no_fca"].attention == "ca"


def test_backbone_fields_override_from_command_line(tmp_path: Path) -> None:
    cfg = compose_config("train", ["model.backbone.attention=se", "model.backbone.last_stride=ir12"], tmp_path)
    assert cfg.model.backbone.attention == "se" and cfg.model.backbone.last_stride == "ir12"


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_instantiates(dataset: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"dataset={dataset}", f"data.root={tmp_path / 'nowhere'}"], tmp_path)
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    assert dm.__class__.__name__.lower().startswith(dataset[:3])


@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_trainer_composes(trainer: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"trainer={trainer}"], tmp_path)
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    if trainer in ("cpu", "ddp_cpu"):
        t = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
        assert t.accelerator.__class__.__name__ == "CPUAccelerator"
    if trainer == "ddp":
        assert cfg.trainer.devices == 2 and cfg.trainer.sync_batchnorm and "16" in cfg.trainer.precision


@pytest.mark.parametrize("logger", LOGGERS)
def test_every_logger_instantiates(logger: str, tmp_path: Path) -> None:
    from internet_plus.tasks.common import instantiate_loggers

    cfg = compose_config("train", [f"logger={logger}"], tmp_path)
    loggers = instantiate_loggers(cfg.get("logger"))
    names = {type(lg).__name__ for lg in loggers}
    expected = {"wandb": {"WandbLogger"}, "csv": {"CSVLogger"}, "none": set()}[logger]
    assert names == expected


@pytest.mark.parametrize("overrides", [[], ["logger=[csv,wandb]"]])
def test_the_default_loggers_are_named_in_the_defaults_list(overrides: list[str], tmp_path: Path) -> None:
    """The CSV log beside W&B is a visible choice (the default list), not something ``logger=wandb`` adds."""
    from internet_plus.tasks.common import instantiate_loggers

    cfg = compose_config("train", overrides, tmp_path)
    assert {type(lg).__name__ for lg in instantiate_loggers(cfg.get("logger"))} == {"CSVLogger", "WandbLogger"}
    assert cfg.logger.wandb.name == "internet_plus_synthetic_s42"


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_builds(optimizer: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"optimizer={optimizer}", *TINY], tmp_path)
    model = hydra.utils.instantiate(cfg.model)
    conf = model.configure_optimizers()
    opt = conf["optimizer"]
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    sched = conf["lr_scheduler"]["scheduler"]
    expected = {
        "adamw_cosine": ("CosineAnnealingWarmRestarts", None),
        "adam_step": ("MultiStepLR", {45: 1, 47: 1}),  # InterNet, RHD/STB: ×0.1 at 45 and 47 of 50 epochs
        "adam_step_interhand": ("MultiStepLR", {15: 1, 17: 1}),  # InterNet, InterHand2.6M: 15 and 17 of 20
    }[optimizer]
    assert type(sched).__name__ == expected[0]
    if expected[1] is not None:
        assert dict(sched.milestones) == expected[1]


def test_paper_scheduler_is_cosine_with_warm_restarts(tmp_path: Path) -> None:
    cfg = compose_config("train", [*TINY], tmp_path)
    conf = hydra.utils.instantiate(cfg.model).configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert type(opt).__name__ == "AdamW"
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # T_0 = 2, T_mult = 3: restarts to the base LR at epochs 2 and 8.
    assert lrs[0] == lrs[2] == lrs[8] == pytest.approx(1e-4)
    assert lrs[1] < lrs[0] and lrs[7] < lrs[3] < lrs[2]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"experiment={experiment}"], tmp_path)
    hydra.utils.instantiate(cfg.model)


@pytest.mark.parametrize(
    ("experiment", "module", "epochs", "internet_epochs", "milestones"),
    [
        ("paper_rhd", "RHDDataModule", 189, 50, [45, 47]),
        ("paper_stb", "STBDataModule", 45, 50, [45, 47]),
        ("paper_interhand", "InterHandDataModule", 20, 20, [15, 17]),
    ],
)
def test_paper_recipes(
    experiment: str, module: str, epochs: int, internet_epochs: int, milestones: list[int], tmp_path: Path
) -> None:
    cfg = compose_config("train", [f"experiment={experiment}"], tmp_path)
    assert cfg.data._target_.endswith(module) and cfg.trainer.max_epochs == epochs
    assert cfg.data.input_size == 256 and cfg.model.codec.heatmap_size == 64
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW"
    assert cfg.model.optimizer.lr == 1e-4 and cfg.model.optimizer.weight_decay == 1e-2
    assert cfg.model.scheduler.T_0 == 2 and cfg.model.scheduler.T_mult == 3
    # the paper's protocol: the whole training split, the last epoch scored, the evaluation split only monitored
    assert cfg.test_ckpt == "last" and cfg.data.val_fraction == 0.0 and cfg.data.monitor_eval_split is True
    assert cfg.callbacks.model_checkpoint.monitor is None and cfg.data.batch_size == 32

    # backbone=resnet50 is InterNet as published: ImageNet weights, Adam without weight decay, its own schedule
    internet = compose_config("train", [f"experiment={experiment}", "backbone=resnet50"], tmp_path)
    assert internet.model.backbone == {**backbone_config("resnet50"), "pretrained": True}
    assert internet.model.optimizer._target_ == "torch.optim.Adam" and internet.model.optimizer.weight_decay == 0.0
    assert internet.model.optimizer.lr == 1e-4 and dict(internet.model.scheduler) == {
        "_target_": "torch.optim.lr_scheduler.MultiStepLR", "milestones": milestones, "gamma": 0.1, "interval": "epoch"
    }  # fmt: skip
    assert internet.trainer.max_epochs == internet_epochs and internet.test_ckpt == "last"
    optimizer = hydra.utils.instantiate(internet.model.optimizer, params=[torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["weight_decay"] == 0.0

    # the controlled variant: ResNet-50 from scratch, trained exactly like InterNet+
    recipe = "paper_interhand" if experiment == "paper_interhand" else "paper"
    scratch = compose_config(
        "train", [f"experiment={experiment}", "backbone=resnet50", f"optimizer={recipe}/resnet50_scratch"], tmp_path
    )
    assert scratch.model.backbone == backbone_config("resnet50") and scratch.trainer.max_epochs == epochs
    assert OmegaConf.to_container(scratch.model.optimizer) == OmegaConf.to_container(cfg.model.optimizer)
    assert OmegaConf.to_container(scratch.model.scheduler) == OmegaConf.to_container(cfg.model.scheduler)

    # the recipe fixes the data set, not the feature extractor: backbone= and trainer= still win
    other = compose_config(
        "train", [f"experiment={experiment}", "backbone=internet_plus_se", "trainer=ddp_cpu"], tmp_path
    )
    assert other.model.backbone == backbone_config("internet_plus_se") and other.trainer.strategy == "ddp"


def test_every_backbone_has_its_paper_recipe() -> None:
    for folder in ("paper", "paper_interhand"):
        recipes = {p.stem for p in (CONF_DIR / "optimizer" / folder).glob("*.yaml")}
        assert recipes == {*backbone_names(), "resnet50_scratch"}, folder


def test_ablation_is_the_papers_grid(tmp_path: Path) -> None:
    cfg = compose_config("train", ["experiment=ablation"], tmp_path)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert set(params["backbone"]) == {
        "resnet50",
        "internet_plus",
        "internet_plus_no_ca",
        "internet_plus_se",
        "internet_plus_no_fca",
    }
    assert set(params["dataset"]) == {"rhd", "stb"} and params["seed"] == ["0"]
    epochs = {"rhd": 189, "stb": 45}  # each job trains as long as the paper's full network on its data set
    for dataset in params["dataset"]:
        for backbone in params["backbone"]:
            expected_backbone = compose_config("train", [f"backbone={backbone}"], tmp_path).model.backbone
            job = compose_config(
                "train", ["experiment=ablation", f"dataset={dataset}", f"backbone={backbone}", "seed=0"], tmp_path
            )
            assert job.data.root.endswith({"rhd": "RHD_published_v2", "stb": "STB"}[dataset])
            assert job.data.input_size == 256 and job.test_ckpt == "last"
            if backbone == "resnet50":  # InterNet as published: its weights, optimiser and 50 epochs
                assert job.model.backbone == {**expected_backbone, "pretrained": True}
                assert job.model.optimizer._target_ == "torch.optim.Adam" and job.trainer.max_epochs == 50
            else:
                assert job.model.backbone == expected_backbone  # (the hydra: resolver reads the last composed config)
                assert job.model.optimizer._target_ == "torch.optim.AdamW"
                assert job.trainer.max_epochs == epochs[dataset]


def test_quickstart_is_internet_plus_on_synthetic_cpu(tmp_path: Path) -> None:
    cfg = compose_config("train", ["experiment=quickstart"], tmp_path)
    assert cfg.model.backbone == backbone_config("internet_plus")
    assert cfg.data._target_.endswith("SyntheticDataModule")
    assert cfg.trainer.accelerator == "cpu"
    # Peak 1 with weight 255² is InterNet's loss (peak 255, weight 1) up to a rescaling of the output.
    assert cfg.model.loss.weights.heatmap == pytest.approx((255.0 / cfg.model.codec.peak) ** 2)
    assert dict(cfg.data.style) == {"hands": "glove", "max_tilt_deg": 30, "background": "plain"}
    assert "quickstart" in cfg.data.root  # its own folder: switching to dataset=synthetic regenerates nothing
    assert cfg.data.input_size // 32 * 2**cfg.model.posenet.num_deconv == cfg.model.codec.heatmap_size


@pytest.mark.parametrize("debug", DEBUGS)
def test_every_debug_preset_keeps_the_task_and_sends_single_runs_to_logs_debug(debug: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"debug={debug}"], tmp_path)
    assert cfg.task_name == "train"  # not renamed: a sweep keeps its folders and its W&B group
    assert "/debug/runs/" in cfg.hydra.run.dir  # a single debug run is kept apart (resume=last never finds it)
    sweep = compose_config("train", ["experiment=ablation", f"debug={debug}"], tmp_path)
    assert sweep.task_name == "ablation" and "/ablation/multiruns/" in sweep.hydra.sweep.dir


def test_unknown_option_lists_valid_ones(tmp_path: Path) -> None:
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="internet_plus"):
        compose_config("train", ["backbone=vgg"], tmp_path)


def test_eval_config_composes(tmp_path: Path) -> None:
    """eval.yaml composes only what eval uses: the network comes from the checkpoint, so no model node."""
    cfg = compose_config("eval", ["ckpt_path=x.ckpt"], tmp_path)
    assert cfg.ckpt_path == "x.ckpt" and "data" in cfg and "trainer" in cfg
    assert "model" not in cfg and "optimizer" not in cfg.get("model", {})
    assert cfg.accel == "auto" and cfg.run_name == "eval_synthetic_s42"


def test_inconsistent_geometry_fails_at_construction(tmp_path: Path) -> None:
    cfg = compose_config("train", [*TINY, "model.codec.heatmap_size=32"], tmp_path)
    with pytest.raises(Exception, match="heatmap_size"):
        hydra.utils.instantiate(cfg.model)
    cfg = compose_config("train", [*TINY, "data.input_size=70"], tmp_path)
    with pytest.raises(Exception, match="multiple of 32"):
        hydra.utils.instantiate(cfg.model)


@pytest.mark.parametrize(
    ("overrides", "heatmap"),
    [
        ([], 64),
        (["data.input_size=128"], 32),
        (["data.input_size=320"], 80),
        (["model.posenet.num_deconv=2"], 32),
        (["experiment=paper_rhd", "data.input_size=128"], 32),
        (["experiment=quickstart"], 16),
    ],
)
def test_heatmap_size_follows_the_input_size(overrides: list[str], heatmap: int, tmp_path: Path) -> None:
    """Changing data.input_size (or the deconvolutions) alone gives a model whose head and codec agree."""
    cfg = compose_config("train", ["logger=none", *overrides], tmp_path)
    assert cfg.model.codec.heatmap_size == heatmap == cfg.data.input_size // 32 * 2**cfg.model.posenet.num_deconv
    model = hydra.utils.instantiate(cfg.model)  # _check_geometry would refuse a disagreement
    assert model.codec.heatmap_size == heatmap


def test_an_input_size_off_the_stride_is_named(tmp_path: Path) -> None:
    cfg = compose_config("train", ["logger=none", "data.input_size=100"], tmp_path)
    with pytest.raises(Exception, match=r"data.input_size=100 must be a positive multiple of 32"):
        _ = cfg.model.codec.heatmap_size


@pytest.mark.parametrize(("trainer", "advice"), [("gpu", "trainer=cpu"), ("ddp", "trainer=ddp_cpu")])
def test_a_gpu_trainer_without_cuda_names_the_cpu_config(
    trainer: str, advice: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from internet_plus.tasks import train as train_task
    from internet_plus.tasks.common import NoGPUError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose_config("train", [f"trainer={trainer}", "logger=none"], tmp_path)
    with pytest.raises(NoGPUError, match=advice) as err:
        train_task.run(cfg)
    assert "CUDA is not available" in str(err.value)
    assert not (tmp_path / "checkpoints").exists()  # stopped before any work
