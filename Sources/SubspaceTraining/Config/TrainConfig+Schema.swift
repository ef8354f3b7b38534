import SubspaceModel

extension TrainConfig {
    /// Every section and key of the YAML config, in file order: the one list that loading, checking,
    /// `resolvedYAML()` and the tests of configs/ and configs/README.md work from.
    static var schema: [ConfigSection] {
        [
            .required("run", \TrainConfig.run, "Where the run writes and how it is seeded.", [
                .text("output", \.output,
                      "Run folder: metrics.jsonl, checkpoints/, config.resolved.yaml and the final model (final/)."),
                .seed("seed", \.seed, "Seed for initialisation, data order and dropout."),
            ]),
            .required("model", \TrainConfig.model, "The model to train.", [
                .choice("source", \.source, [.new, .hf],
                        "new: a freshly initialised model of the shape below; hf: the HF model folder at model.path "
                        + "(its config.json gives the shape, and the shape keys below are ignored)."),
                .optionalText("path", \.path, "HF model folder (config.json, model.safetensors); needed with source hf, not allowed with new."),
                .choice("family", \.family, ModelFamily.allCases,
                        "Architecture: gpt2 (LayerNorm, GELU, learned positions), llama (RMSNorm, rotary, SwiGLU, "
                        + "grouped-query attention) or qwen2 (llama with q/k/v biases)."),
                .int("layers", \.layers, .size, "Transformer blocks."),
                .int("width", \.width, .size, "Residual width (hidden size); heads must divide it."),
                .int("heads", \.heads, .size, "Attention heads."),
                .optionalInt("kv_heads", \.kvHeads, .size,
                             "Key/value heads (grouped-query attention, llama and qwen2); must divide heads; null: as many as heads."),
                .optionalInt("intermediate", \.intermediate, .size,
                             "MLP hidden width; null: 4 × width for gpt2, 8/3 × width rounded up to a multiple of 64 otherwise."),
                .int("context", \.context, .size, "Positions: the longest sequence the model can take."),
                .int("vocab", \.vocab, IntRule(min: 1, max: Int(Int32.max)), "Vocabulary size (at least 256 with the bytes tokenizer)."),
                .number("init_std", \.initStd, .positive, "Standard deviation of the normal initialisation of a new model."),
                .number("dropout", \.dropout, .unitInterval,
                        "Dropout on the embedding output and on each attention and MLP branch before the residual add "
                        + "(GPT-2's embd_pdrop and resid_pdrop), only while training."),
            ]),
            .required("data", \TrainConfig.data, "What the model is trained on.", [
                .choice("kind", \.kind, [.corpus, .sft],
                        "corpus: a token-shard folder made by `subspace data corpus`; sft: a folder with train.jsonl "
                        + "and test.jsonl (made by `subspace data sft`, or your own)."),
                .text("path", \.path, "The data folder (see kind)."),
                .text("tokenizer", \.tokenizer, "bytes (one token per byte), a BPE tokenizer.json (GPT-2, Qwen2, Llama-3, Llama-2 shapes), or a folder holding one."),
                .int("sequence", \.sequence, .size, "Tokens per training sequence; at most model.context."),
                .choice("chat_format", \.chatFormat, ChatFormatChoice.allCases,
                        "SFT examples in the messages shape: auto (the chat template in tokenizer_config.json or "
                        + "chat_template.jinja beside the tokenizer; plain when there is none), chatml, llama3, llama2, "
                        + "or plain (\"user: ...\\nassistant: \", for byte-level models). With a template every assistant turn is trained."),
            ]),
            .required("training", \TrainConfig.training, "The optimizer and its schedule.", [
                .int("steps", \.steps, .positive, "Optimizer steps."),
                .int("global_batch", \.globalBatch, .size,
                     "Sequences per optimizer step across all ranks: micro_batch × ranks × accumulation steps."),
                .int("micro_batch", \.microBatch, .size,
                     "Sequences per forward pass on one rank; micro_batch × ranks must divide global_batch."),
                .number("learning_rate", \.learningRate, .positive, "Peak learning rate."),
                .number("min_learning_rate", \.minLearningRate, .positive,
                        "Learning rate at the end of the cosine decay; at most learning_rate."),
                .int("warmup", \.warmup, .nonNegative, "Steps of linear warmup to learning_rate; at most steps."),
                .choice("schedule", \.schedule, [.cosine, .constant],
                        "After warmup: cosine decay to min_learning_rate, or constant."),
                .number("weight_decay", \.weightDecay, .nonNegative, "AdamW's decoupled weight decay."),
                .number("beta1", \.beta1, .unitInterval, "AdamW's decay of the gradient's moving average."),
                .number("beta2", \.beta2, .unitInterval, "AdamW's decay of the squared gradient's moving average."),
                .number("epsilon", \.epsilon, .positive, "AdamW's epsilon."),
                .optionalNumber("grad_clip", \.gradClip, .positive,
                                "Clip the global gradient norm to this; null turns clipping off."),
                .int("zero_stage", \.zeroStage, IntRule(min: 0, max: 3),
                     "ZeRO stage: 0 replicated; 1 shards optimizer state; 2 also gradients; 3 also parameters."),
                .int("bucket_mb", \.bucketMB, IntRule(min: 1, max: 1 << 20),
                     "ZeRO 0-1: gradients are all-reduced in buckets of consecutive layers of at most this many MiB."),
                .bool("overlap_communication", \.overlapCommunication,
                      "ZeRO 0-1: reduce each bucket on a communication thread while backward continues."),
                .texts("freeze", \.freeze, nonEmpty: false,
                       "Tensors to freeze: Subspace names or regular expressions over them (each must match a tensor)."),
                .choice("activation_checkpointing", \.activationCheckpointing, ActivationCheckpointing.allCases,
                        "none: keep every layer's activations for backward; layers: keep only each layer's input and "
                        + "recompute the layer in backward (about a third more compute, far less memory, the same gradients), "
                        + "with the output head and the loss run a chunk of rows at a time."),
                .choice("precision", \.precision, Precision.allCases,
                        "Matrix products: fp32, or bf16 as PyTorch's CPU autocast (linear layers and the output head take bf16 inputs and "
                        + "accumulate in fp32; weights, gradients, optimizer state, norms, softmax and the loss stay fp32). bf16 needs a CPU "
                        + "with AVX-512 BF16 or AMX (oneDNN) and is refused at start-up elsewhere."),
            ]),
            .optional("lora", \TrainConfig.lora, empty: LoRA(),
                      "LoRA adapters on a frozen base; present (even `lora: {}`) trains them, absent or null trains the model itself.", [
                .int("rank", \.rank, .positive, "Adapter rank r."),
                .number("alpha", \.alpha, .positive, "Scale numerator: the update is alpha / rank · B·A."),
                .optionalTexts("targets", \.targets,
                               "Modules to adapt by PEFT name (target_modules), or one element 're:PATTERN' matching whole module paths; "
                               + "null: the family's query and value projections (gpt2: c_attn; llama, qwen2: q_proj, v_proj)."),
                .number("dropout", \.dropout, .unitInterval, "Dropout on the adapters' input."),
                .bool("rslora", \.rslora, "Rank-stabilised scale alpha / √rank instead of alpha / rank."),
                .choice("initialisation", \.initialisation, [.random, .svdDelta, .pissa, .loraNull],
                        "random: B zero, so training starts from the base; svd-delta: from lora.factors; "
                        + "pissa: from the base weights' principal singular vectors; lora-null: from lora.adapter."),
                .optionalText("factors", \.factors,
                              "For svd-delta: the factors.safetensors written by `subspace delta-svd`; needed then, not allowed otherwise."),
                .optionalText("adapter", \.adapter,
                              "For lora-null: the folder written by `subspace lora-null build`; its variant decides which factor is frozen, "
                              + "and lora.rank, lora.alpha and lora.targets must equal the folder's. Needed then, not allowed otherwise."),
            ]),
            .required("evaluation", \TrainConfig.evaluation, "Validation during training.", [
                .int("every", \.every, .nonNegative, "Evaluate every this many steps and at the end; 0: only at the end."),
                .int("sequences", \.sequences, .positive, "Validation sequences per evaluation, spread over the ranks."),
                .int("exact_match", \.exactMatch, .nonNegative,
                     "SFT: test examples scored by exact match of greedy generations; 0 skips it."),
                .int("max_new_tokens", \.maxNewTokens, .nonNegative, "Tokens generated per exact-match example."),
            ]),
            .required("checkpoint", \TrainConfig.checkpoint, "Saving and resuming.", [
                .int("every", \.every, .nonNegative, "Save every this many steps; 0: only at the end and on SIGTERM."),
                .int("keep", \.keep, .positive, "Newest checkpoints kept in run.output/checkpoints; older ones are deleted."),
                ConfigField<Checkpoint>(
                    name: "resume", type: "auto, never or a checkpoint path",
                    meaning: "auto: continue from the newest checkpoint in run.output if there is one; never: start afresh; "
                        + "or the checkpoint folder to continue from.",
                    read: { section, value in
                        let text = try value.text("auto, never or a checkpoint path")
                        switch text {
                        case "": throw value.typeError("auto, never or a checkpoint path")
                        case "auto": section.resume = .auto
                        case "never": section.resume = .never
                        default: section.resume = .path(text)
                        }
                    },
                    accepts: { if case .path("") = $0.resume { false } else { true } },
                    yaml: { section in
                        switch section.resume {
                        case .auto: "auto"
                        case .never: "never"
                        case .path(let path): YAMLText.scalar(path)
                        }
                    }),
                .bool("allow_other_lineage", \.allowOtherLineage,
                      "Resume a checkpoint whose lineage (data, model source and shape, seed, batch, optimizer, LoRA; "
                      + "see lineage.json in the run folder) differs from this run's; otherwise that is refused, naming both."),
            ]),
            .required("faults", \TrainConfig.faults, "Failure handling.", [
                .number("watchdog_seconds", \.watchdogSeconds, .positive,
                        "A collective still unfinished after this many seconds is reported and the job aborted."),
            ]),
        ]
    }
}
