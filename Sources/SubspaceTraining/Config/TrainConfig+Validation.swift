import Foundation
import SubspaceModel

extension TrainConfig {
    /// Checks every value against its key's rule and the values against each other: what `load` checks,
    /// for a config built or changed in code. Throws the first problem, naming its dotted key.
    public func validate() throws {
        for section in Self.schema {
            if let problem = section.problems(self).first {
                throw ConfigError(.type, key: problem.key, "expected \(problem.expected), got \(problem.shown)")
            }
        }
        try validateModel()
        try validateTraining()
        try validateLoRA()
        if data.kind == .sft, evaluation.exactMatch > 0, evaluation.maxNewTokens == 0 {
            throw ConfigError(.value, key: "evaluation.max_new_tokens",
                              "is 0, but evaluation.exact_match scores \(evaluation.exactMatch) generations; "
                              + "set max_new_tokens ≥ 1 or exact_match: 0", related: ["evaluation.exact_match"])
        }
    }

    /// `validate()`, then that `training.global_batch` splits evenly into micro-batches over
    /// `worldSize` ranks. `file` names the config in errors.
    public func validate(worldSize: Int, file: String? = nil) throws {
        precondition(worldSize >= 1, "a job has at least one rank, got \(worldSize)")
        do {
            try validate()
            let (global, micro) = (training.globalBatch, training.microBatch)
            guard global % (micro * worldSize) != 0 else { return }
            var message = "\(global) is not a multiple of training.micro_batch × ranks = \(micro) × \(worldSize) = \(micro * worldSize)"
            if global % worldSize == 0 {
                let perRank = global / worldSize
                let divisors = (1...perRank).filter { perRank % $0 == 0 }
                let nearest = divisors.sorted { abs($0 - micro) < abs($1 - micro) }.prefix(4).sorted()
                message += "; with \(worldSize) rank\(worldSize == 1 ? "" : "s") training.micro_batch could be "
                    + Self.list(nearest.map(String.init)) + " (divisors of \(global) / \(worldSize) = \(perRank))"
                    + ", or training.global_batch"
            } else {
                message += "; \(global) sequences cannot be split over \(worldSize) ranks, so set training.global_batch"
            }
            let step = micro * worldSize
            let below = global / step * step
            message += " " + Self.list([below, below + step].filter { $0 > 0 }.map(String.init))
            throw ConfigError(.value, source: file, key: "training.global_batch", message, related: ["training.micro_batch"])
        } catch var error as ConfigError {
            if error.source == nil { error.source = file }
            throw error
        }
    }

    /// Checks the files and folders the config names, relative paths from the current directory:
    /// model.path (a folder with a usable config.json, for source hf), data.path (with corpus.json, or
    /// train.jsonl and test.jsonl for sft), data.tokenizer unless `bytes` (a file, or a folder with
    /// tokenizer.json), lora.factors for svd-delta, and a checkpoint to resume from. `file` names the
    /// config in errors.
    public func validateFiles(file: String? = nil) throws {
        let files = FileManager.default
        func isFolder(_ path: String) -> Bool? {
            var folder: ObjCBool = false
            return files.fileExists(atPath: path, isDirectory: &folder) ? folder.boolValue : nil
        }
        func missing(_ key: String, _ path: String, _ what: String) -> ConfigError {
            let exists = isFolder(path) != nil
            let relative = path.hasPrefix("/") ? "" : " (relative to \(files.currentDirectoryPath))"
            return ConfigError(.file, source: file, key: key, "\(path) \(exists ? "is not \(what)" : "does not exist")\(relative)")
        }

        if model.source == .hf, let path = model.path {
            guard isFolder(path) == true else { throw missing("model.path", path, "a folder") }
            let configPath = (path as NSString).appendingPathComponent("config.json")
            guard isFolder(configPath) == false else {
                throw ConfigError(.file, source: file, key: "model.path",
                                  "\(path) holds no config.json; model.source hf needs an HF model folder")
            }
            let hf: ModelConfig
            do {
                hf = try ModelConfig(hfConfigAt: configPath)
            } catch {
                throw ConfigError(.file, source: file, key: "model.path", "\(error)")
            }
            if data.sequence > hf.maxPositions {
                throw ConfigError(.value, source: file, key: "data.sequence",
                                  "\(data.sequence) is more than the \(hf.maxPositions) positions of \(configPath)")
            }
        }
        guard isFolder(data.path) == true else { throw missing("data.path", data.path, "a folder") }
        for name in data.kind == .sft ? ["train.jsonl", "test.jsonl"] : [CorpusManifest.fileName] {
            let path = (data.path as NSString).appendingPathComponent(name)
            guard isFolder(path) == false else { throw missing("data.path", path, "a file") }
        }
        if data.kind == .corpus,
           let bytes = FileManager.default.contents(atPath: (data.path as NSString).appendingPathComponent(CorpusManifest.fileName)),
           let manifest = try? JSONDecoder().decode(CorpusManifest.self, from: bytes) {
            let tokenizerFile = isFolder(data.tokenizer) == true
                ? (data.tokenizer as NSString).appendingPathComponent("tokenizer.json") : data.tokenizer
            var differs = (manifest.tokenizer == "bytes") != (data.tokenizer == "bytes")
            if !differs, data.tokenizer != "bytes", let recorded = manifest.tokenizerSHA256,
               let mine = FileManager.default.contents(atPath: tokenizerFile) {
                differs = mine.withUnsafeBytes { SHA256.hex($0) } != recorded
            }
            if differs {
                throw ConfigError(.value, source: file, key: "data.tokenizer",
                                  "is \(data.tokenizer), but the corpus at data.path was tokenized with \(manifest.tokenizer) "
                                  + "(its corpus.json); use that tokenizer, or rebuild the corpus with `subspace data corpus --tokenizer \(data.tokenizer)`",
                                  related: ["data.path"])
            }
        }
        if data.tokenizer != "bytes" {
            // As `Tokenizers.load` reads it: a tokenizer.json, or a folder holding one.
            let path = isFolder(data.tokenizer) == true
                ? (data.tokenizer as NSString).appendingPathComponent("tokenizer.json") : data.tokenizer
            guard isFolder(path) == false else { throw missing("data.tokenizer", path, "a file") }
        }
        if let lora, lora.initialisation == .svdDelta, let factors = lora.factors, isFolder(factors) != false {
            throw missing("lora.factors", factors, "a file")
        }
        if let lora, lora.initialisation == .loraNull, let adapter = lora.adapter, isFolder(adapter) != true {
            throw missing("lora.adapter", adapter, "a folder")
        }
        if case .path(let path) = checkpoint.resume, isFolder(path) == nil {
            throw missing("checkpoint.resume", path, "a checkpoint")
        }
    }

    // MARK: - Values against each other

    private func validateModel() throws {
        switch model.source {
        case .hf:
            guard model.path != nil else {
                throw ConfigError(.value, key: "model.path", "is null, but model.source hf loads the HF model folder named here",
                                  related: ["model.source"])
            }
            // The shape comes from the folder's config.json: validateFiles() checks data.sequence against it.
            return
        case .new:
            if let path = model.path {
                throw ConfigError(.value, key: "model.path",
                                  "is \(path), but model.source new builds a fresh model; set model.source: hf to start "
                                  + "from that folder, or model.path: null", related: ["model.source"])
            }
        }
        let (width, heads) = (model.width, model.heads)
        guard width % heads == 0 else {
            let divisors = (1...width).filter { width % $0 == 0 }
            let near = [divisors.last { $0 < heads }, divisors.first { $0 > heads }].compactMap { $0 }
            throw ConfigError(.value, key: "model.heads",
                              "\(heads) does not divide model.width \(width); heads could be \(Self.list(near.map(String.init)))",
                              related: ["model.width"])
        }
        if let kvHeads = model.kvHeads {
            if model.family == .gpt2, kvHeads != heads {
                throw ConfigError(.value, key: "model.kv_heads",
                                  "is \(kvHeads), but gpt2 has no grouped-query attention: use null or model.heads (\(heads))",
                                  related: ["model.family"])
            }
            guard heads % kvHeads == 0 else {
                throw ConfigError(.value, key: "model.kv_heads", "\(kvHeads) does not divide model.heads \(heads)",
                                  related: ["model.heads"])
            }
        }
        if model.family != .gpt2, (width / heads) % 2 != 0 {
            throw ConfigError(.value, key: "model.heads",
                              "\(model.family.rawValue)'s rotary positions need an even head width, but model.width / model.heads "
                              + "= \(width) / \(heads) = \(width / heads)", related: ["model.width"])
        }
        if data.sequence > model.context {
            throw ConfigError(.value, key: "data.sequence", "\(data.sequence) is more than model.context \(model.context)",
                              related: ["model.context"])
        }
        if data.tokenizer == "bytes", model.vocab < 256 {
            throw ConfigError(.value, key: "model.vocab", "\(model.vocab) is less than the 256 tokens of data.tokenizer bytes",
                              related: ["data.tokenizer"])
        }
        // The model layer's own rules, in case they ever say more than the checks above.
        let shape = ModelConfig(
            family: model.family, vocabularySize: model.vocab, hiddenSize: width, layerCount: model.layers,
            headCount: heads, keyValueHeadCount: model.kvHeads, intermediateSize: model.intermediate,
            maxPositions: model.context)
        if let problem = shape.problems().first {
            throw ConfigError(.value, key: "model", problem)
        }
    }

    private func validateTraining() throws {
        let t = training
        if t.globalBatch % t.microBatch != 0 {
            throw ConfigError(.value, key: "training.global_batch",
                              "\(t.globalBatch) is not a multiple of training.micro_batch \(t.microBatch)",
                              related: ["training.micro_batch"])
        }
        if t.schedule == .cosine, t.minLearningRate > t.learningRate {
            throw ConfigError(.value, key: "training.min_learning_rate",
                              "\(t.minLearningRate) is more than training.learning_rate \(t.learningRate); the cosine "
                              + "schedule decays from learning_rate down to min_learning_rate", related: ["training.learning_rate"])
        }
        if t.warmup > t.steps {
            throw ConfigError(.value, key: "training.warmup", "\(t.warmup) is more than training.steps \(t.steps)",
                              related: ["training.steps"])
        }
        for pattern in t.freeze {
            if let problem = Self.regexProblem(pattern) {
                throw ConfigError(.value, key: "training.freeze", "'\(pattern)' is not a regular expression: \(problem)")
            }
        }
    }

    private func validateLoRA() throws {
        guard let lora else { return }
        if let targets = lora.targets, let pattern = targets.first(where: { $0.hasPrefix("re:") }) {
            guard targets.count == 1 else {
                throw ConfigError(.value, key: "lora.targets",
                                  "'\(pattern)' is a pattern, which must be the only element (targets are names or one pattern)")
            }
            if let problem = Self.regexProblem(String(pattern.dropFirst(3))) {
                throw ConfigError(.value, key: "lora.targets", "'\(pattern)' is not a regular expression: \(problem)")
            }
        }
        switch (lora.initialisation, lora.factors) {
        case (.svdDelta, nil):
            throw ConfigError(.value, key: "lora.factors",
                              "is null, but lora.initialisation svd-delta starts the adapters from it: set it to the "
                              + "factors.safetensors written by `subspace delta-svd`", related: ["lora.initialisation"])
        case (let initialisation, let factors?) where initialisation != .svdDelta:
            throw ConfigError(.value, key: "lora.factors",
                              "is \(factors), but only lora.initialisation svd-delta reads it (it is \(initialisation.rawValue)); "
                              + "set initialisation: svd-delta or factors: null", related: ["lora.initialisation"])
        default:
            break
        }
        switch (lora.initialisation, lora.adapter) {
        case (.loraNull, nil):
            throw ConfigError(.value, key: "lora.adapter",
                              "is null, but lora.initialisation lora-null starts the adapters from it: set it to a folder "
                              + "written by `subspace lora-null build`", related: ["lora.initialisation"])
        case (let initialisation, let adapter?) where initialisation != .loraNull:
            throw ConfigError(.value, key: "lora.adapter",
                              "is \(adapter), but only lora.initialisation lora-null reads it (it is \(initialisation.rawValue)); "
                              + "set initialisation: lora-null or adapter: null", related: ["lora.initialisation"])
        default:
            break
        }
    }

    /// Why `pattern` does not compile as the whole-name NSRegularExpression that LoRA targets and
    /// training.freeze match with, or nil.
    private static func regexProblem(_ pattern: String) -> String? {
        do {
            _ = try NSRegularExpression(pattern: "^(?:\(pattern))$")
            return nil
        } catch {
            return error.localizedDescription
        }
    }

    /// "a", "a or b", "a, b or c".
    static func list(_ items: [String]) -> String {
        items.count <= 1 ? items.joined() : items.dropLast().joined(separator: ", ") + " or " + items[items.count - 1]
    }
}

extension TrainConfig.Training {
    /// Micro-batches each rank runs per optimizer step; whole once `validate(worldSize:)` has passed.
    public func accumulationSteps(worldSize: Int) -> Int { globalBatch / (microBatch * worldSize) }
}
