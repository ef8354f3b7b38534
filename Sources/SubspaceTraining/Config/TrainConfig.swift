import SubspaceModel

/// Everything `subspace train` needs, as the YAML config spells it (snake_case keys in sections).
/// Defaults here are the documented defaults; `configs/*.yaml` show every key.
///
/// `TrainConfig.load(path:overrides:)` reads a file strictly (the keys and their rules are in
/// `TrainConfig+Schema.swift`, tabled in configs/README.md); `validate(worldSize:)` and `validateFiles()`
/// add the checks that need the job and the file system; `resolvedYAML()` writes every key back.
public struct TrainConfig: Sendable, Equatable {
    public struct Run: Sendable, Equatable {
        /// Run folder: metrics.jsonl, checkpoints/, the resolved config, the final model.
        public var output = "runs/train"
        public var seed: UInt64 = 1
    }

    public struct Model: Sendable, Equatable {
        public enum Source: String, Sendable, Equatable { case new, hf }
        /// `new`: a freshly initialised model of the shape below; `hf`: load the HF folder at `path`.
        public var source: Source = .new
        public var path: String? = nil
        public var family: ModelFamily = .gpt2
        public var layers = 4
        public var width = 128
        public var heads = 4
        public var kvHeads: Int? = nil
        public var intermediate: Int? = nil
        /// Positions (the longest sequence the model can take).
        public var context = 64
        public var vocab = 256
        public var initStd: Float = 0.02
        public var dropout: Float = 0
    }

    public struct Data: Sendable, Equatable {
        public enum Kind: String, Sendable, Equatable { case corpus, sft }
        public var kind: Kind = .corpus
        /// `corpus`: a token-shard folder made by `subspace data corpus`; `sft`: a folder with
        /// train.jsonl and test.jsonl (made by `subspace data sft`, or your own).
        public var path = "data/shakespeare"
        /// `bytes` or a tokenizer.json path.
        public var tokenizer = "bytes"
        /// Tokens per training sequence (≤ model.context).
        public var sequence = 64
        /// How `messages` SFT examples are rendered: the tokenizer's template (`auto`), a named format, or
        /// `plain` (`"user: …\nassistant: "`, for byte-level models).
        public var chatFormat: ChatFormatChoice = .auto
    }

    public struct Training: Sendable, Equatable {
        public enum Schedule: String, Sendable, Equatable { case cosine, constant }
        public var steps = 200
        /// Sequences per optimizer step across all ranks: micro_batch × ranks × accumulation.
        public var globalBatch = 12
        /// Sequences per forward pass on one rank.
        public var microBatch = 12
        public var learningRate: Float = 1e-3
        public var minLearningRate: Float = 1e-4
        public var warmup = 0
        public var schedule: Schedule = .cosine
        public var weightDecay: Float = 0.1
        public var beta1: Float = 0.9
        public var beta2: Float = 0.99
        public var epsilon: Float = 1e-8
        /// Global gradient-norm clipping; nil turns it off.
        public var gradClip: Float? = 1.0
        /// 0: replicated; 1: optimizer state sharded; 2: + gradients; 3: + parameters.
        public var zeroStage = 0
        /// Gradient bucket size for the all-reduce, in MiB.
        public var bucketMB = 16
        /// Stages 0–1: reduce gradient buckets on a communication thread while backward continues.
        public var overlapCommunication = true
        /// Tensors to freeze: Subspace names or regular expressions over them (each must match).
        public var freeze: [String] = []
        /// `layers`: keep only each layer's input for backward and recompute the layer (same gradients).
        public var activationCheckpointing: ActivationCheckpointing = .none
        /// Precision of the matrix products (`Precision`: fp32, or bf16 as PyTorch's CPU autocast).
        public var precision: Precision = .fp32
    }

    public struct LoRA: Sendable, Equatable {
        public enum Initialisation: String, Sendable, Equatable { case random, svdDelta = "svd-delta", pissa, loraNull = "lora-null" }
        public var rank = 8
        public var alpha: Float = 16
        /// Module names (PEFT's target_modules list) or, with one element starting with `re:`, a pattern;
        /// nil: the family's attention query and value projections (`defaultTargets`).
        public var targets: [String]? = nil
        public var dropout: Float = 0
        public var rslora = false
        public var initialisation: Initialisation = .random
        /// For `svd-delta`: the factors.safetensors written by `subspace delta-svd`.
        public var factors: String? = nil
        /// For `lora-null`: a folder written by `subspace lora-null build` (PEFT files + null_space.json).
        public var adapter: String? = nil

        public init() {}

        /// PEFT's defaults per architecture: gpt2's fused `c_attn`, llama's and qwen2's `q_proj` and `v_proj`.
        public static func defaultTargets(_ family: ModelFamily) -> [String] {
            family == .gpt2 ? ["c_attn"] : ["q_proj", "v_proj"]
        }
    }

    public struct Evaluation: Sendable, Equatable {
        /// Evaluate every this many steps (and at the end); 0 only at the end.
        public var every = 100
        /// Validation sequences per evaluation, spread over the ranks.
        public var sequences = 64
        /// SFT: test examples scored by exact match of greedy generations (0 skips it).
        public var exactMatch = 32
        public var maxNewTokens = 16
    }

    public struct Checkpoint: Sendable, Equatable {
        public enum Resume: Sendable, Equatable { case auto, never, path(String) }
        /// Save every this many steps (0: only at the end and on SIGTERM).
        public var every = 100
        /// Newest checkpoints kept; older ones are deleted.
        public var keep = 2
        /// `auto`: the newest checkpoint in run.output, if any; `never`: start afresh; or a checkpoint folder.
        public var resume: Resume = .auto
        /// Resume a checkpoint whose lineage (data, model, shape, trajectory settings) differs from this run's.
        public var allowOtherLineage = false
    }

    public struct Faults: Sendable, Equatable {
        /// A collective that has not finished after this many seconds is reported and the job aborted.
        public var watchdogSeconds: Double = 300
    }

    public var run = Run()
    public var model = Model()
    public var data = Data()
    public var training = Training()
    /// Present: LoRA training with the base frozen.
    public var lora: LoRA? = nil
    public var evaluation = Evaluation()
    public var checkpoint = Checkpoint()
    public var faults = Faults()

    public init() {}
}
