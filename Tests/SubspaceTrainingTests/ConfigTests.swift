import Foundation
import Testing
import SubspaceModel
@testable import SubspaceTraining

/// The YAML loader: defaults, every kind of error naming its key, overrides, LoRA presence, the resolved
/// YAML round trip, world-size and file checks, and the shipped configs/.
@Suite struct ConfigTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shipped = ["base.yaml", "teacher.yaml", "student-lora.yaml"]

    /// The error `load` throws for `yaml`, or an issue when it throws none.
    func loadError(_ yaml: String, overrides: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
        do {
            let config = try TrainConfig.load(yaml: yaml, source: "test.yaml", overrides: overrides)
            Issue.record("loaded without an error: \(config)", sourceLocation: sourceLocation)
        } catch let error as ConfigError {
            return error
        } catch {
            Issue.record("not a ConfigError: \(error)", sourceLocation: sourceLocation)
        }
        return nil
    }

    // MARK: - Defaults and values

    @Test func emptyFileGivesTheDefaults() throws {
        #expect(try TrainConfig.load(yaml: "") == TrainConfig())
        #expect(try TrainConfig.load(yaml: "# nothing but a comment\n") == TrainConfig())
        #expect(try TrainConfig.load(yaml: "run: {}\ntraining:\nmodel: null\n") == TrainConfig())
        let defaults = TrainConfig()
        #expect(defaults.lora == nil)
        #expect(defaults.training.gradClip == 1.0)
        #expect(defaults.checkpoint.resume == .auto)
    }

    @Test func readsEveryKindOfValue() throws {
        let config = try TrainConfig.load(yaml: """
            run: {output: runs/x, seed: 18446744073709551615}
            model:
              family: llama
              heads: 8
              kv_heads: 2
              intermediate: 0x100
              init_std: 1e-2
              vocab: 1000
            data: {kind: sft, path: data/sft, tokenizer: tok/tokenizer.json, sequence: 32}
            training:
              learning_rate: 3.0e-4
              min_learning_rate: 3e-5
              grad_clip: null
              zero_stage: 3
              schedule: constant
              activation_checkpointing: layers
              freeze: ['wte', 'h\\.0\\..*']
              steps: 0100
            lora:
              alpha: 32
              targets: [c_attn]
              rslora: true
              initialisation: svd-delta
              factors: deltas/factors.safetensors
            checkpoint: {resume: runs/x/checkpoints/step-100}
            faults: {watchdog_seconds: 2.5}
            """)
        #expect(config.run.output == "runs/x")
        #expect(config.run.seed == .max)
        #expect(config.model.family == .llama)
        #expect(config.model.kvHeads == 2)
        #expect(config.model.intermediate == 256)
        #expect(config.model.initStd == 0.01)
        #expect(config.model.vocab == 1000)
        #expect(config.data.kind == .sft)
        #expect(config.data.sequence == 32)
        #expect(config.training.learningRate == Float("3.0e-4"))
        #expect(config.training.minLearningRate == Float("3e-5"))
        #expect(config.training.gradClip == nil)
        #expect(config.training.zeroStage == 3)
        #expect(config.training.schedule == .constant)
        #expect(config.training.activationCheckpointing == .layers)
        #expect(config.training.freeze == ["wte", "h\\.0\\..*"])
        #expect(config.training.steps == 100, "YAML 1.2: a leading zero is not octal")
        #expect(config.lora == {
            var lora = TrainConfig.LoRA()
            lora.alpha = 32
            lora.targets = ["c_attn"]
            lora.rslora = true
            lora.initialisation = .svdDelta
            lora.factors = "deltas/factors.safetensors"
            return lora
        }())
        #expect(config.checkpoint.resume == .path("runs/x/checkpoints/step-100"))
        #expect(config.checkpoint.every == 100)
        #expect(config.faults.watchdogSeconds == 2.5)
    }

    @Test func loraPresenceTurnsLoRAOn() throws {
        #expect(try TrainConfig.load(yaml: "lora: {}").lora == TrainConfig.LoRA())
        #expect(try TrainConfig.load(yaml: "lora:\n  rank: 4\n").lora?.rank == 4)
        #expect(try TrainConfig.load(yaml: "lora: null").lora == nil)
        #expect(try TrainConfig.load(yaml: "lora:\n").lora == nil)
        #expect(try TrainConfig.load(yaml: "run: {}").lora == nil)
    }

    // MARK: - Errors naming their key

    @Test func unknownSectionNamesItAndListsTheSections() throws {
        let error = try #require(loadError("run: {}\ntrainig:\n  steps: 5\n"))
        #expect(error.kind == .unknownKey)
        #expect(error.key == "trainig")
        #expect(error.line == 2)
        #expect(error.description.hasPrefix("test.yaml:2: trainig: unknown section; did you mean training?"))
        #expect(error.description.contains("run, model, data, training, lora, evaluation, checkpoint, faults"))

        let flat = try #require(loadError("training.steps: 5\n"))
        #expect(flat.description.contains("training.steps"))
        #expect(flat.description.contains("nest it"))
    }

    @Test func unknownKeyNamesTheDottedKeyAndListsTheSectionsKeys() throws {
        let error = try #require(loadError("training:\n  steps: 5\n  stpes: 5\n"))
        #expect(error.kind == .unknownKey)
        #expect(error.key == "training.stpes")
        #expect(error.line == 3)
        #expect(error.description.contains("did you mean training.steps?"))
        #expect(error.description.contains("training takes steps, global_batch, micro_batch, learning_rate"))

        let camel = try #require(loadError("training: {globalBatch: 12}"))
        #expect(camel.description.contains("training.globalBatch"))
        #expect(camel.description.contains("did you mean training.global_batch?"))

        let misplaced = try #require(loadError("training: {kv_heads: 2}"))
        #expect(misplaced.description.contains("training.kv_heads"))
        #expect(misplaced.description.contains("did you mean model.kv_heads?"))

        let alias = try #require(loadError("training: {lr: 0.01}"))
        #expect(alias.description.contains("training.lr"))
        #expect(alias.description.contains("did you mean training.learning_rate?"))

        let lora = try #require(loadError("lora: {r: 4}"))
        #expect(lora.description.contains("lora.r: unknown key; did you mean lora.rank?"))
    }

    @Test func duplicateKeysAreRefused() throws {
        let error = try #require(loadError("training:\n  steps: 5\n  steps: 6\n"))
        #expect(error.key == "training.steps")
        #expect(error.description.contains("appears twice (first on line 2)"))
        let section = try #require(loadError("run: {}\nrun: {}\n"))
        #expect(section.key == "run")
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        let yaml: String
        let key: String
        /// Fragments the message must hold: the value as shown and what was expected.
        let value: String
        let expected: String
        var testDescription: String { "\(key): \(value)" }
    }

    static let wrongTypes: [Bad] = [
        Bad(yaml: "training: {steps: ten}", key: "training.steps", value: "\"ten\"", expected: "an integer ≥ 1"),
        Bad(yaml: "training: {steps: '100'}", key: "training.steps", value: "\"100\"", expected: "an integer ≥ 1"),
        Bad(yaml: "training: {steps: 1.5}", key: "training.steps", value: "1.5", expected: "an integer ≥ 1"),
        Bad(yaml: "training: {steps: 0}", key: "training.steps", value: "0", expected: "an integer ≥ 1"),
        Bad(yaml: "training: {global_batch: -12}", key: "training.global_batch", value: "-12", expected: "an integer in 1...16777216"),
        Bad(yaml: "training: {micro_batch: 0}", key: "training.micro_batch", value: "0", expected: "an integer in 1...16777216"),
        Bad(yaml: "training: {learning_rate: fast}", key: "training.learning_rate", value: "\"fast\"", expected: "a number > 0"),
        Bad(yaml: "training: {learning_rate: 0}", key: "training.learning_rate", value: "0", expected: "a number > 0"),
        Bad(yaml: "training: {min_learning_rate: -1e-4}", key: "training.min_learning_rate", value: "-1e-4", expected: "a number > 0"),
        Bad(yaml: "training: {learning_rate: .inf}", key: "training.learning_rate", value: ".inf", expected: "a number > 0"),
        Bad(yaml: "training: {beta1: 1.0}", key: "training.beta1", value: "1.0", expected: "a number in [0, 1)"),
        Bad(yaml: "training: {beta2: -0.1}", key: "training.beta2", value: "-0.1", expected: "a number in [0, 1)"),
        Bad(yaml: "training: {zero_stage: 4}", key: "training.zero_stage", value: "4", expected: "an integer in 0...3"),
        Bad(yaml: "training: {grad_clip: -1}", key: "training.grad_clip", value: "-1", expected: "a number > 0 or null"),
        Bad(yaml: "training: {weight_decay: -0.1}", key: "training.weight_decay", value: "-0.1", expected: "a number ≥ 0"),
        Bad(yaml: "training: {warmup: -5}", key: "training.warmup", value: "-5", expected: "an integer ≥ 0"),
        Bad(yaml: "training: {bucket_mb: 0}", key: "training.bucket_mb", value: "0", expected: "an integer in 1...1048576"),
        Bad(yaml: "training: {schedule: linear}", key: "training.schedule", value: "\"linear\"", expected: "one of cosine, constant"),
        Bad(yaml: "training: {activation_checkpointing: all}", key: "training.activation_checkpointing", value: "\"all\"",
            expected: "one of none, layers"),
        Bad(yaml: "training: {freeze: {a: b}}", key: "training.freeze", value: "a mapping", expected: "a list of text"),
        Bad(yaml: "training: 5", key: "training", value: "5", expected: "a mapping of training keys"),
        Bad(yaml: "run: {seed: -1}", key: "run.seed", value: "-1", expected: "an integer in 0..."),
        Bad(yaml: "run: {output: [a, b]}", key: "run.output", value: "a list", expected: "non-empty text"),
        Bad(yaml: "run: {output: ''}", key: "run.output", value: "\"\"", expected: "non-empty text"),
        Bad(yaml: "model: {source: HF}", key: "model.source", value: "\"HF\"", expected: "one of new, hf"),
        Bad(yaml: "model: {family: gpt3}", key: "model.family", value: "\"gpt3\"", expected: "one of gpt2, llama, qwen2"),
        Bad(yaml: "model: {layers: 2.0}", key: "model.layers", value: "2.0", expected: "an integer in 1...16777216"),
        Bad(yaml: "model: {kv_heads: 0}", key: "model.kv_heads", value: "0", expected: "an integer in 1...16777216 or null"),
        Bad(yaml: "model: {init_std: 0}", key: "model.init_std", value: "0", expected: "a number > 0"),
        Bad(yaml: "data: {kind: text}", key: "data.kind", value: "\"text\"", expected: "one of corpus, sft"),
        Bad(yaml: "data: {sequence: null}", key: "data.sequence", value: "null", expected: "an integer in 1...16777216"),
        Bad(yaml: "lora: {rank: 0}", key: "lora.rank", value: "0", expected: "an integer ≥ 1"),
        Bad(yaml: "lora: {alpha: -16}", key: "lora.alpha", value: "-16", expected: "a number > 0"),
        Bad(yaml: "lora: {dropout: 1}", key: "lora.dropout", value: "1", expected: "a number in [0, 1)"),
        Bad(yaml: "lora: {targets: []}", key: "lora.targets", value: "a list", expected: "a non-empty list of text"),
        Bad(yaml: "lora: {rslora: maybe}", key: "lora.rslora", value: "\"maybe\"", expected: "true or false"),
        Bad(yaml: "lora: {initialisation: svd}", key: "lora.initialisation", value: "\"svd\"", expected: "one of random, svd-delta, pissa"),
        Bad(yaml: "lora: 8", key: "lora", value: "8", expected: "a mapping of lora keys, {} or null"),
        Bad(yaml: "evaluation: {every: -1}", key: "evaluation.every", value: "-1", expected: "an integer ≥ 0"),
        Bad(yaml: "evaluation: {sequences: 0}", key: "evaluation.sequences", value: "0", expected: "an integer ≥ 1"),
        Bad(yaml: "evaluation: {exact_match: -2}", key: "evaluation.exact_match", value: "-2", expected: "an integer ≥ 0"),
        Bad(yaml: "evaluation: {max_new_tokens: x}", key: "evaluation.max_new_tokens", value: "\"x\"", expected: "an integer ≥ 0"),
        Bad(yaml: "checkpoint: {every: -100}", key: "checkpoint.every", value: "-100", expected: "an integer ≥ 0"),
        Bad(yaml: "checkpoint: {keep: 0}", key: "checkpoint.keep", value: "0", expected: "an integer ≥ 1"),
        Bad(yaml: "checkpoint: {resume: null}", key: "checkpoint.resume", value: "null", expected: "auto, never or a checkpoint path"),
        Bad(yaml: "faults: {watchdog_seconds: 0}", key: "faults.watchdog_seconds", value: "0", expected: "a number > 0"),
    ]

    @Test(arguments: wrongTypes) func wrongTypeNamesKeyValueAndType(_ bad: Bad) throws {
        let error = try #require(loadError(bad.yaml))
        #expect(error.kind == .type)
        #expect(error.key == bad.key)
        #expect(error.description.hasPrefix("test.yaml:1: \(bad.key): expected \(bad.expected)"), "\(error)")
        #expect(error.description.hasSuffix("got \(bad.value)"), "\(error)")
    }

    static let impossible: [Bad] = [
        Bad(yaml: "training: {learning_rate: 1e-4, min_learning_rate: 1e-3}", key: "training.min_learning_rate",
            value: "training.learning_rate", expected: "0.001 is more than training.learning_rate 0.0001"),
        Bad(yaml: "training: {global_batch: 12, micro_batch: 5}", key: "training.global_batch",
            value: "training.micro_batch", expected: "12 is not a multiple of training.micro_batch 5"),
        Bad(yaml: "training: {warmup: 300, steps: 200}", key: "training.warmup",
            value: "training.steps", expected: "300 is more than training.steps 200"),
        Bad(yaml: "training: {freeze: ['h.0.(attn']}", key: "training.freeze",
            value: "h.0.(attn", expected: "is not a regular expression"),
        Bad(yaml: "model: {heads: 3}", key: "model.heads", value: "model.width", expected: "3 does not divide model.width 128; heads could be 2 or 4"),
        Bad(yaml: "model: {family: llama, heads: 4, kv_heads: 3}", key: "model.kv_heads", value: "model.heads",
            expected: "3 does not divide model.heads 4"),
        Bad(yaml: "model: {kv_heads: 2}", key: "model.kv_heads", value: "gpt2", expected: "no grouped-query attention"),
        Bad(yaml: "model: {family: qwen2, width: 80, heads: 16}", key: "model.heads", value: "80 / 16 = 5",
            expected: "even head width"),
        Bad(yaml: "data: {sequence: 128}", key: "data.sequence", value: "model.context", expected: "128 is more than model.context 64"),
        Bad(yaml: "model: {vocab: 100}", key: "model.vocab", value: "data.tokenizer", expected: "less than the 256 tokens"),
        Bad(yaml: "model: {source: hf}", key: "model.path", value: "model.source hf", expected: "is null"),
        Bad(yaml: "model: {path: runs/base/final}", key: "model.path", value: "model.source: hf", expected: "model.source new"),
        Bad(yaml: "lora: {initialisation: svd-delta}", key: "lora.factors", value: "subspace delta-svd", expected: "is null"),
        Bad(yaml: "lora: {factors: f.safetensors}", key: "lora.factors", value: "svd-delta", expected: "it is random"),
        Bad(yaml: "lora: {targets: ['re:(q|v_proj']}", key: "lora.targets", value: "re:(q|v_proj", expected: "is not a regular expression"),
        Bad(yaml: "lora: {targets: [q_proj, 're:.*mlp.*']}", key: "lora.targets", value: "re:.*mlp.*", expected: "the only element"),
        Bad(yaml: "data: {kind: sft}\nevaluation: {max_new_tokens: 0}", key: "evaluation.max_new_tokens",
            value: "evaluation.exact_match", expected: "is 0"),
    ]

    @Test(arguments: impossible) func impossibleValuesNameTheirKey(_ bad: Bad) throws {
        let error = try #require(loadError(bad.yaml))
        #expect(error.kind == .value)
        #expect(error.key == bad.key)
        #expect(error.description.hasPrefix("test.yaml"), "\(error)")
        #expect(error.description.contains("\(bad.key): "), "\(error)")
        #expect(error.description.contains(bad.value), "\(error)")
        #expect(error.description.contains(bad.expected), "\(error)")
    }

    @Test func impossibleValuesPointAtTheLineOfAKeyInvolved() throws {
        // min_learning_rate is not in the file: the error points at learning_rate's line.
        let error = try #require(loadError("run: {}\ntraining:\n  steps: 10\n  learning_rate: 1e-5\n"))
        #expect(error.description.hasPrefix("test.yaml:4: training.min_learning_rate: "))
        // Neither key of the problem in the file: the file alone.
        let inCode = try #require(loadError("model: {vocab: 100}\n"))
        #expect(inCode.description.hasPrefix("test.yaml:1: model.vocab: "))
    }

    @Test func notYAMLOrNotAMappingNamesTheFile() throws {
        let syntax = try #require(loadError("training: {steps: 5\n"))
        #expect(syntax.kind == .syntax)
        #expect(syntax.description.hasPrefix("test.yaml: not valid YAML"))
        let list = try #require(loadError("- run\n- model\n"))
        #expect(list.kind == .type)
        #expect(list.description.hasPrefix("test.yaml:1: expected a mapping of sections"))
    }

    @Test func loadPathNamesTheFile() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("run.yaml").path
        try "training:\n  steps: -1\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try TrainConfig.load(path: path) }
        do {
            _ = try TrainConfig.load(path: path)
        } catch let error as ConfigError {
            #expect(error.description == "\(path):2: training.steps: expected an integer ≥ 1, got -1")
        }
        do {
            _ = try TrainConfig.load(path: folder.appendingPathComponent("missing.yaml").path)
            Issue.record("a missing file loaded")
        } catch let error as ConfigError {
            #expect(error.kind == .unreadable)
            #expect(error.description.contains("missing.yaml"))
        }
    }

    @Test func validateCatchesConfigsBuiltInCode() throws {
        var config = TrainConfig()
        try config.validate()
        config.training.beta2 = 1
        #expect(throws: ConfigError.self) { try config.validate() }
        do {
            try config.validate()
        } catch let error as ConfigError {
            #expect(error.description == "training.beta2: expected a number in [0, 1), got 1.0")
        }
        config = TrainConfig()
        config.lora = TrainConfig.LoRA()
        config.lora?.targets = []
        #expect(throws: ConfigError.self) { try config.validate() }
    }

    // MARK: - Overrides

    @Test func overridesChangeTheTreeBeforeDecoding() throws {
        let yaml = "training:\n  steps: 100\n  grad_clip: 0.5\nlora:\n  rank: 4\n"
        let config = try TrainConfig.load(yaml: yaml, overrides: [
            "training.steps=300", "training.grad_clip=null", "lora.targets=[q_proj,v_proj,o_proj]",
            "model.family=llama", "run.output=runs/with spaces", "training.learning_rate=3e-4",
        ])
        #expect(config.training.steps == 300)
        #expect(config.training.gradClip == nil)
        #expect(config.lora?.rank == 4)
        #expect(config.lora?.targets == ["q_proj", "v_proj", "o_proj"])
        #expect(config.model.family == .llama)
        #expect(config.run.output == "runs/with spaces")
        #expect(config.training.learningRate == Float("3e-4"))

        #expect(try TrainConfig.load(yaml: yaml, overrides: ["lora=null"]).lora == nil)
        #expect(try TrainConfig.load(yaml: "", overrides: ["lora={}"]).lora == TrainConfig.LoRA())
        #expect(try TrainConfig.load(yaml: "lora: null", overrides: ["lora.rank=16"]).lora?.rank == 16)
        let section = try TrainConfig.load(yaml: yaml, overrides: ["training={steps: 7}"])
        #expect(section.training.steps == 7)
        #expect(section.training.gradClip == 1.0, "a replaced section starts from the defaults")
        #expect(try TrainConfig.load(yaml: yaml, overrides: ["training.steps=5", "training.steps=6"]).training.steps == 6)
    }

    @Test func overrideErrorsNameTheOverride() throws {
        let unknown = try #require(loadError("", overrides: ["training.stpes=3"]))
        #expect(unknown.kind == .unknownKey)
        #expect(unknown.description.hasPrefix("--set training.stpes=3: training.stpes: unknown key; did you mean training.steps?"))

        let section = try #require(loadError("", overrides: ["trianing.steps=3"]))
        #expect(section.description.hasPrefix("--set trianing.steps=3: trianing.steps: unknown section; did you mean training?"))

        let deep = try #require(loadError("", overrides: ["training.steps.max=3"]))
        #expect(deep.kind == .unknownKey)
        #expect(deep.description.contains("training.steps.max"))

        let malformed = try #require(loadError("", overrides: ["training.steps"]))
        #expect(malformed.kind == .override)
        #expect(malformed.description.hasPrefix("--set training.steps: expected dotted.key=value"))
        #expect(try #require(loadError("", overrides: ["=3"])).kind == .override)

        let type = try #require(loadError("training: {steps: 5}", overrides: ["training.steps=ten"]))
        #expect(type.description == "--set training.steps=ten: training.steps: expected an integer ≥ 1, got \"ten\"")

        let syntax = try #require(loadError("", overrides: ["lora.targets=[a,"]))
        #expect(syntax.kind == .syntax)
        #expect(syntax.description.hasPrefix("--set lora.targets=[a,: lora.targets: the value is not valid YAML"))

        // A problem across keys blames the override that caused it.
        let batch = try #require(loadError("training: {global_batch: 12}", overrides: ["training.micro_batch=5"]))
        #expect(batch.description.hasPrefix("--set training.micro_batch=5: training.global_batch: 12 is not a multiple"))
        let factors = try #require(loadError("lora: {}", overrides: ["lora.initialisation=svd-delta"]))
        #expect(factors.description.hasPrefix("--set lora.initialisation=svd-delta: lora.factors: is null"))
    }

    // MARK: - World size

    @Test func worldSizeMustSplitTheGlobalBatch() throws {
        var config = TrainConfig()
        config.training.globalBatch = 12
        config.training.microBatch = 6
        try config.validate(worldSize: 1)
        try config.validate(worldSize: 2)
        #expect(config.training.accumulationSteps(worldSize: 1) == 2)
        #expect(config.training.accumulationSteps(worldSize: 2) == 1)

        do {
            try config.validate(worldSize: 4, file: "configs/base.yaml")
            Issue.record("12 sequences split into micro-batches of 6 on 4 ranks")
        } catch let error as ConfigError {
            #expect(error.kind == .value)
            #expect(error.description == "configs/base.yaml: training.global_batch: 12 is not a multiple of training.micro_batch × "
                + "ranks = 6 × 4 = 24; with 4 ranks training.micro_batch could be 1 or 3 (divisors of 12 / 4 = 3), "
                + "or training.global_batch 24")
        }
        config.training.globalBatch = 13
        config.training.microBatch = 1
        do {
            try config.validate(worldSize: 2)
            Issue.record("13 sequences split over 2 ranks")
        } catch let error as ConfigError {
            #expect(error.description == "training.global_batch: 13 is not a multiple of training.micro_batch × ranks = 1 × 2 = 2; "
                + "13 sequences cannot be split over 2 ranks, so set training.global_batch 12 or 14")
        }
    }

    // MARK: - Files

    static func temporaryFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("subspace-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    @Test func validateFilesNamesTheKeyAndThePath() throws {
        let root = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let files = FileManager.default
        func path(_ name: String) -> String { root.appendingPathComponent(name).path }
        func fileError(_ config: TrainConfig, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
            do {
                try config.validateFiles(file: "c.yaml")
                Issue.record("validateFiles passed", sourceLocation: sourceLocation)
            } catch let error as ConfigError {
                return error
            } catch {
                Issue.record("not a ConfigError: \(error)", sourceLocation: sourceLocation)
            }
            return nil
        }

        var config = TrainConfig()
        config.data.path = path("corpus")
        let noData = try #require(fileError(config))
        #expect(noData.kind == .file)
        #expect(noData.description == "c.yaml: data.path: \(path("corpus")) does not exist")
        try files.createDirectory(atPath: path("corpus"), withIntermediateDirectories: true)
        #expect(try #require(fileError(config)).description.contains("data.path: \(path("corpus/corpus.json")) does not exist"))
        try "{}".write(toFile: path("corpus/corpus.json"), atomically: true, encoding: .utf8)
        try config.validateFiles()

        config.data.tokenizer = path("tokenizer.json")
        #expect(try #require(fileError(config)).description.contains("data.tokenizer: \(path("tokenizer.json"))"))
        config.data.tokenizer = path("corpus")
        #expect(try #require(fileError(config)).description.contains("data.tokenizer: \(path("corpus/tokenizer.json"))"))
        config.data.tokenizer = "bytes"

        config.data.kind = .sft
        #expect(try #require(fileError(config)).description.contains("data.path: \(path("corpus/train.jsonl"))"))
        try "".write(toFile: path("corpus/train.jsonl"), atomically: true, encoding: .utf8)
        try "".write(toFile: path("corpus/test.jsonl"), atomically: true, encoding: .utf8)
        try config.validateFiles()

        config.model.source = .hf
        config.model.path = path("base")
        #expect(try #require(fileError(config)).description == "c.yaml: model.path: \(path("base")) does not exist")
        try files.createDirectory(atPath: path("base"), withIntermediateDirectories: true)
        #expect(try #require(fileError(config)).description.contains("model.path: \(path("base")) holds no config.json"))
        try """
            {"model_type": "gpt2", "vocab_size": 256, "n_embd": 128, "n_layer": 4, "n_head": 4, "n_positions": 32}
            """.write(toFile: path("base/config.json"), atomically: true, encoding: .utf8)
        let positions = try #require(fileError(config))
        #expect(positions.key == "data.sequence")
        #expect(positions.description.contains("64 is more than the 32 positions of \(path("base/config.json"))"))
        config.data.sequence = 32
        try config.validateFiles()
        try "{\"model_type\": \"bert\"}".write(toFile: path("base/config.json"), atomically: true, encoding: .utf8)
        #expect(try #require(fileError(config)).description.contains("model.path: "))

        config = TrainConfig()
        config.data.path = path("corpus")
        config.lora = TrainConfig.LoRA()
        config.lora?.initialisation = .svdDelta
        config.lora?.factors = path("factors.safetensors")
        #expect(try #require(fileError(config)).description.contains("lora.factors: \(path("factors.safetensors")) does not exist"))
        config.lora = nil
        config.checkpoint.resume = .path(path("checkpoints/step-5"))
        #expect(try #require(fileError(config)).description.contains("checkpoint.resume: \(path("checkpoints/step-5"))"))
    }

    // MARK: - Resolved YAML

    @Test func resolvedYAMLHasEveryKeyAndLoadsBackEqual() throws {
        let defaults = TrainConfig()
        let yaml = defaults.resolvedYAML()
        for section in TrainConfig.schema where !section.isOptional {
            #expect(yaml.contains("\n\(section.name):\n"))
            for key in section.keys { #expect(yaml.contains("\n  \(key.name): "), "\(section.name).\(key.name)") }
        }
        #expect(yaml.contains("\nlora: null\n"))
        #expect(try TrainConfig.load(yaml: yaml) == defaults)

        var odd = TrainConfig()
        odd.run.output = "yes"
        odd.run.seed = .max
        odd.model.family = .qwen2
        odd.model.kvHeads = 2
        odd.model.intermediate = 320
        odd.model.initStd = 0.0123
        odd.data.kind = .sft
        odd.data.path = "data/my sft: \"quoted\" \\ #not a comment"
        odd.data.tokenizer = "123"
        odd.training.learningRate = 3e-4
        odd.training.minLearningRate = 1.2345678e-7
        odd.training.epsilon = 1e-12
        odd.training.gradClip = nil
        odd.training.freeze = ["h\\.0\\..*", "null", "", "-x"].filter { !$0.isEmpty }
        odd.lora = TrainConfig.LoRA()
        odd.lora?.targets = ["re:.*(c_attn|c_fc)"]
        odd.lora?.alpha = 0.1
        odd.lora?.dropout = 0.05
        odd.lora?.initialisation = .svdDelta
        odd.lora?.factors = "a~/factors.safetensors"
        odd.checkpoint.resume = .path("true")
        odd.faults.watchdogSeconds = 0.1
        try odd.validate()
        #expect(try TrainConfig.load(yaml: odd.resolvedYAML()) == odd, "\(odd.resolvedYAML())")

        odd.checkpoint.resume = .never
        odd.training.schedule = .constant
        #expect(try TrainConfig.load(yaml: odd.resolvedYAML()) == odd)
    }

    // MARK: - Shipped configs

    @Test(arguments: shipped) func shippedConfigLoadsAndValidates(_ name: String) throws {
        let path = Self.repository.appendingPathComponent("configs/\(name)").path
        let config = try TrainConfig.load(path: path)
        try config.validate(worldSize: 1, file: path)
        try config.validate(worldSize: 2, file: path)
        #expect(try TrainConfig.load(yaml: config.resolvedYAML()) == config)
        switch name {
        case "base.yaml":
            #expect(config.model.source == .new && config.model.family == .gpt2 && config.data.kind == .corpus)
            #expect(config.data.path == "data/shakespeare" && config.run.output == "runs/base" && config.lora == nil)
        case "teacher.yaml":
            #expect(config.model.source == .hf && config.model.path == "runs/base/final")
            #expect(config.data.kind == .sft && config.lora == nil)
        default:
            #expect(config.model.source == .hf && config.model.path == "runs/base/final" && config.data.kind == .sft)
            #expect(config.lora?.rank == 8 && config.lora?.alpha == 16)
            #expect(config.lora?.targets == ["c_attn", "c_proj", "c_fc"])
        }
    }

    /// Every key of every section is in each shipped file (lora's commented out where LoRA is off),
    /// under a comment that ends with its default as `TrainConfig` has it.
    @Test(arguments: shipped) func shippedConfigShowsEveryKeyWithItsDefault(_ name: String) throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("configs/\(name)"), encoding: .utf8)
        var lines = text.components(separatedBy: "\n")
        if let start = lines.firstIndex(of: "# lora:") {
            // Uncomment the commented-out lora section in place of `lora: null`.
            lines.removeAll { $0 == "lora: null" }
            let start = lines.firstIndex(of: "# lora:") ?? start
            var index = start
            while index < lines.count, lines[index].hasPrefix("# ") {
                lines[index].removeFirst(2)
                index += 1
            }
        }
        var section = ""
        var comment: [String] = []
        var seen: Set<String> = []
        for line in lines {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") {
                comment.append(String(trimmed.dropFirst()).trimmingCharacters(in: .whitespaces))
                continue
            }
            defer { comment = [] }
            guard let colon = trimmed.firstIndex(of: ":") else { continue }
            let name = String(trimmed[..<colon])
            if !line.hasPrefix(" ") {
                section = name
                seen.insert(name)
                continue
            }
            let key = "\(section).\(name)"
            seen.insert(key)
            let schemaKey = try #require(TrainConfig.schema.first { $0.name == section }?.keys.first { $0.name == name }, "\(key)")
            #expect(comment.joined(separator: " ").hasSuffix("Default: \(schemaKey.defaultValue)."), "\(name): \(key)")
        }
        for schemaSection in TrainConfig.schema {
            #expect(seen.contains(schemaSection.name), "\(name): \(schemaSection.name)")
            for key in schemaSection.keys { #expect(seen.contains("\(schemaSection.name).\(key.name)"), "\(name): \(schemaSection.name).\(key.name)") }
        }
    }

    @Test func readmeTableListsEveryKeyWithTypeAndDefault() throws {
        let readme = try String(contentsOf: Self.repository.appendingPathComponent("configs/README.md"), encoding: .utf8)
        for section in TrainConfig.schema {
            for key in section.keys {
                let row = "| `\(section.name).\(key.name)` | \(key.type) | `\(key.defaultValue)` |"
                #expect(readme.contains(row), "\(row)")
            }
        }
    }

    // MARK: - Issue 17: YAML 1.2, ~, the README's examples

    /// configs/README.md promises YAML 1.2: `yes`, `on` and `1_000` are YAML 1.1 forms, refused with the key.
    @Test(arguments: [("training: {overlap_communication: yes}", "training.overlap_communication"),
                      ("training: {overlap_communication: on}", "training.overlap_communication"),
                      ("lora: {rslora: No}", "lora.rslora"),
                      ("training: {steps: 1_000}", "training.steps"),
                      ("model: {init_std: 0.000_1}", "model.init_std"),
                      ("run: {seed: 1_2}", "run.seed"),
                      ("training: {steps: 0b101}", "training.steps")])
    func yaml11FormsAreRefused(_ yaml: String, _ key: String) throws {
        let error = try #require(loadError(yaml))
        #expect(error.key == key, "\(error)")
        #expect(try TrainConfig.load(yaml: "training: {overlap_communication: False, steps: 0x10}").training.steps == 16)
    }

    @Test func homeIsExpandedInPathKeys() throws {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        let config = try TrainConfig.load(yaml: "run: {output: ~/runs/x}\ndata: {path: '~/data'}\ncheckpoint: {resume: ~/ckpt}")
        #expect(config.run.output == home + "/runs/x")
        #expect(config.data.path == home + "/data")
        #expect(config.checkpoint.resume == .path(home + "/ckpt"))
        #expect(try TrainConfig.load(yaml: "run: {output: a~b}").run.output == "a~b")
    }

    @Test func configFolderIsNamed() throws {
        #expect { try TrainConfig.load(path: NSTemporaryDirectory()) } throws: { "\($0)".contains("is a folder; --config takes a YAML file") }
    }

    /// Every `--set` of the README's Overrides block applies to every shipped config, validates, and builds
    /// its LoRA adapters on the config's model (gpt2: the default targets are gpt2 names).
    @Test(arguments: shipped) func readmeOverrideExamplesRun(_ name: String) throws {
        let readme = try String(contentsOf: Self.repository.appendingPathComponent("configs/README.md"), encoding: .utf8)
        let block = try #require(readme.components(separatedBy: "## Overrides").dropFirst().first?.components(separatedBy: "```").dropFirst().first)
        var examples: [String] = []
        for line in block.split(separator: "\n") {
            let code = line.components(separatedBy: "#")[0]
            for part in code.components(separatedBy: "--set ").dropFirst() {
                var value = part.trimmingCharacters(in: .whitespaces)
                if value.hasPrefix("'"), let end = value.dropFirst().firstIndex(of: "'") { value = String(value[value.index(after: value.startIndex)..<end]) }
                examples.append(value)
            }
        }
        #expect(examples.count >= 6, "\(examples)")
        let path = Self.repository.appendingPathComponent("configs/\(name)").path
        for example in examples {
            let config = try TrainConfig.load(path: path, overrides: [example])
            try config.validate(worldSize: 1)
            guard let lora = config.lora else { continue }
            let model = ModelConfig(family: config.model.family, vocabularySize: 256, hiddenSize: 32, layerCount: 2, headCount: 2, maxPositions: 64)
            let targets = lora.targets ?? TrainConfig.LoRA.defaultTargets(model.family)
            let chosen: LoRAConfig.Targets = targets.count == 1 && targets[0].hasPrefix("re:") ? .pattern(String(targets[0].dropFirst(3))) : .names(targets)
            #expect(throws: Never.self, "\(name) --set \(example)") {
                _ = try LoRAAdapters(config: LoRAConfig(rank: lora.rank, alpha: lora.alpha, targets: chosen), model: model, seed: 1)
            }
        }
    }
}
