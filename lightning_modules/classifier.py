"""FineTuneClassifier: fine-tunes a backbone with SGD, logs loss and top-1 / top-5 accuracy."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from errors import ConfigError
from lightning_modules.backbones import build_backbone, explain_defaults, head_name

SCHEDULERS = (None, "multistep", "cosine", "step")
OPTIMIZERS = ("sgd", "adamw")


class FineTuneClassifier(LightningModule):
    """A classifier fine-tuned end to end (docs/protocol.md §4: SGD, lr 1e-3, momentum 0.9, weight
    decay 5e-4).

    Args:
        backbone: a name in ``BACKBONES`` or ``timm:<timm model name>``.
        num_classes: output classes (linked from the datamodule by train.py).
        pretrained: local weights file, URL, torchvision weights name or timm tag (downloaded
            once into the usual cache, see ``lightning_modules.backbones``).
        lr, momentum, weight_decay: optimiser settings (momentum unused by AdamW).
        optimizer: ``"sgd"`` (paper) or ``"adamw"``.
        scheduler: ``None``, ``"multistep"`` (``milestones``, ``gamma``; epochs), ``"step"``
            (``step_size``, ``gamma``) or ``"cosine"`` (over ``trainer.max_epochs``).
        milestones, gamma, step_size: scheduler settings.
        image_size: the data's image side (linked from the datamodule by train.py / evaluate.py);
            timm models built for a fixed input size (ViT, Swin) are built for it.
    """

    def __init__(
        self,
        backbone: str = "vgg16_bn",
        num_classes: int = 200,
        pretrained: str | None = None,
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        optimizer: str = "sgd",
        scheduler: str | None = None,
        milestones: tuple[int, ...] = (30, 60),
        gamma: float = 0.1,
        step_size: int = 30,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer={optimizer!r} is not one of {OPTIMIZERS}")
        if scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler={scheduler!r} is not one of {SCHEDULERS}")
        self.save_hyperparameters()
        self.net = build_backbone(backbone, num_classes, pretrained, image_size)
        self.head_name = head_name(backbone, self.net)
        try:
            defaults = explain_defaults(backbone, self.net)
        except ConfigError as err:  # no rule for this timm model: --evaluation.layer names one
            self._explain_error: ConfigError | None = err
            self.explain_reshape = None
        else:
            self._explain_error = None
            self._explain_layer = defaults.layer
            self.explain_reshape = defaults.reshape
        self.loss_fn = nn.CrossEntropyLoss()
        acc = MetricCollection({
            "acc": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "acc_top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
        })
        self.train_metrics = acc.clone(prefix="train/")
        self.val_metrics = acc.clone(prefix="val/")
        self.test_metrics = acc.clone(prefix="test/")
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()

    @property
    def explain_layer(self) -> str:
        """The backbone's default explanation layer (an error where its family has no rule)."""
        if self._explain_error is not None:
            raise self._explain_error
        return self._explain_layer

    @explain_layer.setter
    def explain_layer(self, name: str) -> None:
        self._explain_layer, self._explain_error = name, None

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W]`` normalised images -> logits ``[B, num_classes]``."""
        return self.net(x)

    def _step(self, batch: tuple[Tensor, ...], stage: str) -> Tensor:
        x, y = batch[0], batch[1]
        logits = self(x)
        loss = self.loss_fn(logits, y)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        mean_loss: MeanMetric = getattr(self, f"{stage}_loss")
        metrics.update(logits.detach(), y)
        mean_loss.update(loss.detach(), weight=y.numel())
        if stage == "train":
            self.log("train/loss", mean_loss, on_step=False, on_epoch=True, prog_bar=True,
                     batch_size=y.numel())
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False,
                     batch_size=y.numel())
            self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=y.numel())
        return loss

    def _log_epoch(self, stage: str) -> None:
        """Log the epoch's val/test loss and accuracies (torchmetrics sum them across ranks).

        Logged here, on every rank, rather than in the step: under DDP a rank whose split share is
        empty runs no step, and Lightning computes (a collective) only the keys a rank logged.
        """
        self.log(f"{stage}/loss", getattr(self, f"{stage}_loss"), on_step=False, on_epoch=True,
                 prog_bar=True)
        self.log_dict(getattr(self, f"{stage}_metrics"), on_step=False, on_epoch=True,
                      prog_bar=True)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """Cross-entropy on ``(images [B,3,H,W], labels [B], ...)``."""
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """Loss and accuracy on a validation batch."""
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        """Loss and accuracy on a test batch."""
        self._step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        """Log ``val/loss``, ``val/acc``, ``val/acc_top5``."""
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        """Log ``test/loss``, ``test/acc``, ``test/acc_top5``."""
        self._log_epoch("test")

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """Logits ``[B, C]``."""
        return self(batch[0])

    def configure_optimizers(self) -> Any:
        """SGD (or AdamW) over all parameters, with the configured scheduler."""
        hp = self.hparams
        if hp.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler is None:
            return opt
        if hp.scheduler == "multistep":
            sched: Any = torch.optim.lr_scheduler.MultiStepLR(opt, list(hp.milestones), hp.gamma)
        elif hp.scheduler == "step":
            sched = torch.optim.lr_scheduler.StepLR(opt, hp.step_size, hp.gamma)
        else:
            t_max = max(1, self.trainer.max_epochs or 1)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another backbone or class count with one clear message.

        Runs before Lightning loads the state dict, so a mismatch never ends in
        ``load_state_dict``'s list of dozens of size mismatches.
        """
        where = self._trainer.ckpt_path if self._trainer is not None else None
        name = f"checkpoint {where}" if where else "the checkpoint"
        state = checkpoint.get("state_dict", {})
        theirs = checkpoint.get("hyper_parameters", {}).get("backbone")
        ours = self.hparams.backbone
        if theirs is not None and theirs != ours:
            raise ConfigError(
                f"{name} holds a {theirs!r} model, but the configured backbone is {ours!r}: "
                f"evaluate/test it with --model.backbone {theirs} (or the experiment config it "
                f"was trained with), or pass a checkpoint of a {ours!r} model.")
        shapes = {k: v.shape for k, v in self.state_dict().items()}
        net_keys = {k for k in state if k.startswith("net.")}
        own_net = {k for k in shapes if k.startswith("net.")}
        if state and net_keys != own_net:
            missing, unexpected = sorted(own_net - net_keys), sorted(net_keys - own_net)
            raise ConfigError(
                f"{name} does not fit the configured {ours!r} backbone (its hyper_parameters name "
                f"{theirs or 'no backbone'}): {len(missing)} of the model's weights are missing "
                f"(e.g. {missing[:2]}), {len(unexpected)} are unknown (e.g. {unexpected[:2]}). "
                "Pass the checkpoint train.py wrote for this experiment, or set --model.backbone "
                "to the backbone it was trained with.")
        key = f"net.{self.head_name}.weight"
        if key in state:
            ckpt_classes = state[key].shape[0]
            if ckpt_classes != self.hparams.num_classes:
                raise ConfigError(
                    f"{name} has {ckpt_classes} classes but the model/data have "
                    f"{self.hparams.num_classes}: the checkpoint was trained on another dataset; "
                    "use the data config it was trained with, or fine-tune from it with "
                    "model.pretrained=<checkpoint> (the head is then re-initialised).")
        wrong = [k for k, v in state.items() if k in shapes and k != key and v.shape != shapes[k]]
        if wrong:
            raise ConfigError(
                f"{name} does not fit the configured {ours!r} backbone: {len(wrong)} weights have "
                f"other shapes (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)} in the checkpoint, "
                f"{tuple(shapes[wrong[0]])} in the model). It was trained with other backbone "
                "settings; use the config it was trained with.")
