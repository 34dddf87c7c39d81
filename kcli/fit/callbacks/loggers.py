"""Callbacks that record each epoch's logs: CSVLogger (a CSV file) and TensorBoard.

Both write inside the run folder. TensorBoard's writer comes from torch, imported only when
the callback is built.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from kcli.errors import KcliError, install_hint
from kcli.fit.callbacks.base import Callback, CallbackSpec, _inside_run_folder


# ---- CSVLogger ---------------------------------------------------------------------------------
class CSVLogger(CallbackSpec):
    """Write each epoch's logs to a CSV file in the run folder.

    Keras' format: the 0-based epoch, then the logged names sorted ("NA" where one is missing).
    `append` keeps what an existing file holds; a resumed run continues its own file.
    """

    type: Literal["CSVLogger"] = "CSVLogger"
    filename: str = "log.csv"
    separator: str = Field(",", min_length=1, max_length=1)
    append: bool = False

    @field_validator("filename")
    @classmethod
    def _check_filename(cls, value: str) -> str:
        return _inside_run_folder(value)

    def build(self) -> Callback:
        return CSVLoggerCallback(self)


class CSVLoggerCallback(Callback):
    def __init__(self, spec: CSVLogger) -> None:
        self.spec = spec
        self.keys: list[str] | None = None
        self.next_epoch = 0  # epochs already written, so a resumed run continues the file
        self._resumed = False
        self._file: Any = None

    def on_train_begin(self, logs: dict[str, float]) -> None:
        path = Path(self.trainer.run_dir) / self.spec.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._resumed and path.is_file():
            self._keep_rows_before(path, self.next_epoch)
        keep = (self.spec.append or self._resumed) and path.is_file()
        has_rows = keep and path.stat().st_size > 0
        self._file = path.open("a" if keep else "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file, delimiter=self.spec.separator, lineterminator="\n")
        self._write_header = not has_rows

    def _keep_rows_before(self, path: Path, epoch: int) -> None:
        """Drop rows a crashed run wrote after its checkpoint: they will be trained again."""
        from kcli.files import write_text_atomic

        rows = list(csv.reader(io.StringIO(path.read_text("utf-8")), delimiter=self.spec.separator))
        kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epoch]
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.spec.separator, lineterminator="\n").writerows(kept)
        write_text_atomic(path, buffer.getvalue())

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.keys is None:
            self.keys = sorted(logs)
        if self._write_header:
            self._writer.writerow(["epoch", *self.keys])
            self._write_header = False
        self._writer.writerow([epoch, *(logs.get(k, "NA") for k in self.keys)])
        self._file.flush()
        self.next_epoch = epoch + 1

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def state_dict(self) -> dict[str, Any]:
        return {"keys": list(self.keys or []), "next_epoch": self.next_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.keys = list(state["keys"]) or None
        self.next_epoch = int(state["next_epoch"])
        self._resumed = True


# ---- TensorBoard -------------------------------------------------------------------------------
_MISSING_TENSORBOARD = (
    f"the TensorBoard callback needs the tensorboard package: {install_hint('tensorboard')}"
)


def _summary_writer_class() -> Any:
    """torch's SummaryWriter; KcliError with the install hint when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise KcliError(_MISSING_TENSORBOARD) from None
    return SummaryWriter


class TensorBoard(CallbackSpec):
    """Epoch curves (and weight histograms every `histogram_freq` epochs) for TensorBoard.

    As in Keras, training values go to `<log_dir>/train` and val_ ones, without the prefix, to
    `<log_dir>/validation`, as `epoch_<name>`. Logged per epoch (`update_freq: epoch`).
    """

    type: Literal["TensorBoard"] = "TensorBoard"
    log_dir: str = "tensorboard"
    histogram_freq: int = Field(0, ge=0)
    update_freq: Literal["epoch"] = "epoch"

    @field_validator("log_dir")
    @classmethod
    def _check_log_dir(cls, value: str) -> str:
        return _inside_run_folder(value)

    def build(self) -> Callback:
        return TensorBoardCallback(self, _summary_writer_class())

    def check_available(self) -> None:
        try:
            found = importlib.util.find_spec("tensorboard") is not None
        except (ValueError, ImportError):  # in sys.modules as None: blocked, as if missing
            found = False
        if not found:
            raise KcliError(_MISSING_TENSORBOARD)


class TensorBoardCallback(Callback):
    def __init__(self, spec: TensorBoard, writer_class: Any) -> None:
        self.spec = spec
        self._writer_class = writer_class
        self._writers: dict[str, Any] = {}

    def on_train_begin(self, logs: dict[str, float]) -> None:
        root = Path(self.trainer.run_dir) / self.spec.log_dir
        self._writers = {
            part: self._writer_class(log_dir=str(root / part)) for part in ("train", "validation")
        }

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for name, value in logs.items():
            part = "validation" if name.startswith("val_") else "train"
            tag = "learning_rate" if name == "lr" else name.removeprefix("val_")
            self._writers[part].add_scalar(f"epoch_{tag}", value, epoch)
        freq = self.spec.histogram_freq
        if freq and epoch % freq == 0:
            for name, weight in self.trainer.model.named_parameters():
                self._writers["train"].add_histogram(name, weight.detach().cpu(), epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs: dict[str, float]) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
