import Foundation
import SubspaceModel

/// The memory one rank of a training run needs, estimated from the shapes alone (in floating point, so
/// absurd sizes cannot overflow), before anything big is allocated: parameters, gradients and AdamW
/// moments as ZeRO shards them, the activations of one micro-batch kept for backward (attention
/// probabilities B·H·T² per layer, logits B·T·V, …) and their gradient scratch, ZeRO's block buffers
/// and scratch (the final export streams block by block and adds nothing), and in bf16 the weights' bf16
/// copies and the products' rounded operands. `check` turns "more than this machine has" into an error naming the key that
/// costs the most and the bytes, instead of a failed allocation that aborts with a backtrace.
public struct MemoryEstimate: Sendable {
    public struct Term: Sendable {
        /// The config key (or option) whose value makes this term large.
        public let key: String
        public let what: String
        public let bytes: Double
        public var kind: Kind = .states
    }

    /// Model states (parameters, gradients, moments, as sharded), activations of one micro-batch, and
    /// ZeRO's block buffers and scratch.
    public enum Kind: Sendable { case states, activations, buffers }

    public func bytes(_ kind: Kind) -> Double { terms.filter { $0.kind == kind }.reduce(0) { $0 + $1.bytes } }

    public let terms: [Term]
    public var total: Double { terms.reduce(0) { $0 + $1.bytes } }
    public var largest: Term { terms.max { $0.bytes < $1.bytes }! }

    /// - Parameters: `keys` names the config keys (or CLI options) in messages: vocab, layers, width,
    ///   batch, sequence.
    public init(model c: ModelConfig, microBatch: Int, sequence: Int, zeroStage: Int, worldSize: Int,
                trainableFraction: Double = 1, dropout: Bool = false, checkpointing: ActivationCheckpointing = .none,
                precision: Precision = .fp32, keys: Keys = .config) {
        let (V, C, L, H) = (Double(c.vocabularySize), Double(c.hiddenSize), Double(c.layerCount), Double(c.headCount))
        let (I, P) = (Double(c.intermediateSize), Double(c.maxPositions))
        let (Q, KV) = (Double(c.headCount * c.headDimension), Double(c.keyValueHeadCount * c.headDimension))
        let (B, T, W) = (Double(microBatch), Double(sequence), Double(max(worldSize, 1)))
        let embedding = V * C * (c.tiedEmbeddings ? 1 : 2) + (c.usesRotary ? 0 : P * C)
        let perLayer = C * (Q + 2 * KV) + Q * C + (c.gatedMLP ? 3 : 2) * C * I + 4 * C + Q + 2 * KV + I
        let layers = L * perLayer
        // Per parameter: the value, its gradient (trainable only), two AdamW moments (trainable only), as the
        // stage shards them.
        let parameterShare = zeroStage >= 3 ? 1 / W : 1, gradientShare = zeroStage >= 2 ? 1 / W : 1, momentShare = zeroStage >= 1 ? 1 / W : 1
        let perParameter = 4 * (parameterShare + trainableFraction * (gradientShare + 2 * momentShare))
        // ZeRO's buffers (ZeroEngine): stage 3 gathers each kind of block (a vocabulary slice of the
        // embedding or head — ParameterLayout cuts them into ceil(V·C / layer) slices —, a layer, a small
        // block: position embedding or final norm) into a buffer of its own, and stages 2–3 take trainable
        // blocks' gradients in one; stages 1–2 gather updated parameters through a packed block and this
        // rank's part of one; accumulation (not counted) adds this rank's part of a block. Stages 0–1
        // reduce gradient buckets in place.
        let slices = L > 0 ? max(1, min(V, (V * C / perLayer).rounded(.up))) : 1
        let slice = (V / slices).rounded(.up) * C, sliceWidth = (V / slices).rounded(.up)
        let small = max(2 * C, c.usesRotary ? 0 : P * C)
        let blocks = slice + perLayer + small, largest = max(slice, perLayer, small)
        var buffers = 0.0
        if zeroStage == 3 { buffers += blocks * (1 + trainableFraction) }
        if zeroStage == 2 { buffers += blocks * trainableFraction }
        if zeroStage == 1 || zeroStage == 2 { buffers += trainableFraction * largest * (1 + 1 / W) }
        let N = B * T
        // Activation checkpointing keeps every layer's input but one layer's activations (recomputed in
        // backward), and one chunk of logits instead of all of them.
        let kept = checkpointing == .layers ? 1 : L
        // The tiled attention keeps each row's logsumexp [B, H, T] per layer (plus small per-worker tiles).
        let attention = kept * B * H * T * 4
        let perRow = (checkpointing == .layers ? L * C : 0)
            + kept * (4 * C + (Q + 2 * KV) + Q + (c.gatedMLP ? 3 : 2) * I + (dropout ? 2 * C : 0)) + 3 * C + 2 * Q + 2 * KV + 4 * I
        // All logits [B·T, V] without checkpointing; with it one tile of rows × the widest vocabulary slice.
        let logitRows = checkpointing == .layers ? min(B * T, max(256, Double((1 << 24) / max(c.vocabularySize, 1)))) * sliceWidth / V : B * T
        let (v, w, l, b, t) = (c.vocabularySize, c.hiddenSize, c.layerCount, microBatch, sequence)
        var terms = [
            Term(key: keys.vocab, what: "embeddings and their optimizer state (\(keys.vocab) \(v) × \(keys.width) \(w))",
                 bytes: embedding * perParameter),
            Term(key: keys.width, what: "layer weights and their optimizer state (\(keys.layers) \(l) × \(keys.width) \(w) squared)",
                 bytes: layers * perParameter),
            Term(key: keys.sequence, what: "attention row statistics (\(keys.batch) \(b) × \(c.headCount) heads × \(keys.sequence) \(t), per layer)",
                 bytes: attention, kind: .activations),
            // Rows are batch × sequence: named by whichever of the two is the larger factor.
            Term(key: t >= b ? keys.sequence : keys.batch, what: "activations kept for backward (\(keys.batch) \(b) × \(keys.sequence) \(t) rows per layer)",
                 bytes: N * perRow * 4, kind: .activations),
            Term(key: keys.vocab, what: "logits, their gradient in place (\(keys.batch) \(b) × \(keys.sequence) \(t) × \(keys.vocab) \(v))",
                 bytes: logitRows * V * 4, kind: .activations),
            Term(key: keys.vocab, what: "ZeRO-\(zeroStage) block buffers (a vocabulary slice of \(keys.vocab) \(v) × \(keys.width) \(w), a layer)",
                 bytes: buffers * 4, kind: .buffers),
        ]
        if precision == .bf16 {
            // bf16 copies of the weights (Transformer+Precision): every block's, kept until the parameters change,
            // or under ZeRO-3 only the blocks gathered at once (a vocabulary slice, a layer, a small block), frozen ones too.
            let copies = zeroStage == 3 ? blocks : embedding + layers + 2 * C
            terms.append(Term(key: keys.precision, what: "bf16 copies of the weights (\(keys.precision) bf16\(zeroStage == 3 ? ", the blocks in use" : ""))",
                              bytes: 2 * copies, kind: zeroStage == 3 ? .buffers : .states))
            // The rounded inputs and output gradient of one product (BF16Scratch): the widest input and output
            // over the layer's products, the head's output a chunk of rows at a time.
            let widestOutput = max(N * max(Q + 2 * KV, C, (c.gatedMLP ? 2 : 1) * I), min(N, Double(max(256, (1 << 24) / max(c.vocabularySize, 1)))) * V)
            terms.append(Term(key: t >= b ? keys.sequence : keys.batch, what: "bf16 roundings of a product's input and output gradient",
                              bytes: 2 * (N * max(C, Q, I) + widestOutput), kind: .activations))
        }
        self.terms = terms
    }

    /// For a training config whose model shape is `model` (from the config, or model.path's config.json).
    public init(config: TrainConfig, model: ModelConfig, worldSize: Int) {
        let keys: Keys = config.model.source == .hf
            ? Keys(vocab: "model.path", layers: "model.path", width: "model.path", batch: "training.micro_batch", sequence: "data.sequence")
            : .config
        self.init(model: model, microBatch: config.training.microBatch, sequence: config.data.sequence,
                  zeroStage: config.training.zeroStage, worldSize: worldSize,
                  trainableFraction: config.lora == nil ? 1 : 0, dropout: config.model.dropout > 0,
                  checkpointing: config.training.activationCheckpointing, precision: config.training.precision, keys: keys)
    }

    public struct Keys: Sendable {
        public var vocab: String, layers: String, width: String, batch: String, sequence: String, precision: String
        public init(vocab: String, layers: String, width: String, batch: String, sequence: String, precision: String = "training.precision") {
            (self.vocab, self.layers, self.width, self.batch, self.sequence, self.precision) = (vocab, layers, width, batch, sequence, precision)
        }
        public static let config = Keys(vocab: "model.vocab", layers: "model.layers", width: "model.width",
                                        batch: "training.micro_batch", sequence: "data.sequence")
    }

    /// nil when `ranksHere` ranks of this estimate fit in `available` bytes; otherwise the message, which
    /// names the costliest key and the bytes.
    public func problem(available: Double, ranksHere: Int) -> (key: String, message: String)? {
        let need = total * Double(max(ranksHere, 1))
        guard need > available || !total.isFinite else { return nil }
        let big = largest
        let per = ranksHere > 1 ? " per rank × \(ranksHere) ranks on this node" : ""
        return (big.key, "the run needs about \(Self.bytes(total))\(per), more than the \(Self.bytes(available)) of memory this machine has; "
                + "the largest part is \(big.what): \(Self.bytes(big.bytes))")
    }

    /// Throws a `ConfigError` naming the costliest key when the run cannot fit.
    public func check(available: Double = MemoryEstimate.machineBytes(), ranksHere: Int = MemoryEstimate.ranksOnThisNode(),
                      source: String? = nil) throws {
        if let (key, message) = problem(available: available, ranksHere: ranksHere) {
            throw ConfigError(.value, source: source, key: key, message)
        }
    }

    /// Physical memory, or the cgroup's limit when that is lower.
    public static func machineBytes() -> Double {
        var bytes = Double(ProcessInfo.processInfo.physicalMemory)
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: path, encoding: .utf8),
               let limit = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
                bytes = min(bytes, limit)
            }
        }
        return bytes
    }

    /// Ranks of this job on this node (Open MPI's local size), 1 outside mpirun.
    public static func ranksOnThisNode() -> Int {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1
    }

    /// "3.3 GB" (powers of 1000, as `free -g` does not; plain and short).
    public static func bytes(_ value: Double) -> String {
        guard value.isFinite else { return "an unbounded amount" }
        let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"]
        var v = value, i = 0
        while v >= 1000, i < units.count - 1 { v /= 1000; i += 1 }
        return i == 0 ? "\(Int(v)) bytes" : String(format: "%.1f %@ (%.0f bytes)", v, units[i], value)
    }
}

extension TrainConfig {
    /// The model's shape without building it: from the model keys (source new) or model.path's config.json.
    public func modelShape() throws -> ModelConfig {
        switch model.source {
        case .new:
            return ModelConfig(family: model.family, vocabularySize: model.vocab, hiddenSize: model.width, layerCount: model.layers,
                               headCount: model.heads, keyValueHeadCount: model.kvHeads, intermediateSize: model.intermediate,
                               maxPositions: model.context)
        case .hf:
            let path = ((model.path ?? "") as NSString).appendingPathComponent("config.json")
            do { return try ModelConfig(hfConfigAt: path) } catch {
                throw ConfigError(.file, key: "model.path", "\(error)")
            }
        }
    }
}
