import Foundation
import SubspaceCore

/// What `subspace forward` does: load an HF model folder (and a PEFT adapter), run a batch of
/// `input_ids` from a safetensors file, and write `logits` [B, T, V], `loss` [1] (HF causal-LM
/// convention: position t predicts token t+1, mean over B·(T−1)) and, when asked, `grad.<name>` for every
/// trainable tensor under its HF name (with an adapter: its PEFT file name; the base is frozen).
public enum ForwardPass {
    public struct InputError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public struct Result: Sendable {
        public let loss: Float
        public let batch: Int
        public let sequence: Int
    }

    public static func run(model modelFolder: String, adapter: String?, input: String, output: String,
                           gradients: Bool, precision: Precision = .fp32) throws -> Result {
        let model = try HFCheckpoint.load(folder: modelFolder)
        model.precision = precision
        let config = model.config
        if let adapter {
            model.adapters = try PEFTAdapter.load(folder: adapter, for: config)
            model.frozen = Set(model.layout.entries.map(\.role))
        }
        let batch = try SafetensorsFile(path: input)
        guard batch.contains("input_ids") else { throw InputError(description: "\(input): no tensor named 'input_ids'") }
        let (shape, values) = try batch.integers("input_ids")
        guard shape.count == 2, shape[0] >= 1, shape[1] >= 1 else {
            throw InputError(description: "\(input): input_ids must be [B, T] with B, T ≥ 1, got \(shape)")
        }
        let (B, T) = (shape[0], shape[1])
        guard T <= config.maxPositions else {
            throw InputError(description: "\(input): sequence length \(T) exceeds the model's \(config.maxPositions) positions")
        }
        if let bad = values.first(where: { $0 < 0 || $0 >= Int64(config.vocabularySize) }) {
            throw InputError(description: "\(input): input_ids holds \(bad), outside the vocabulary 0..<\(config.vocabularySize)")
        }
        let ids = values.map { Int32($0) }
        var targets = [Int32](repeating: -100, count: B * T)
        for b in 0..<B { for t in 0..<(T - 1) { targets[b * T + t] = ids[b * T + t + 1] } }

        let loss = model.forward(ids: ids, targets: targets, B: B, T: T) ?? .nan
        var writer = SafetensorsWriter(metadata: ["format": "pt", "producer": "subspace forward"])
        writer.add("logits", model.logits)
        writer.add("loss", Tensor(shape: [1], values: [loss]))
        if gradients {
            model.zeroGradients()
            model.backward()
            if let adapters = model.adapters {
                for a in adapters.adapters {
                    for b in [false, true] { writer.add("grad." + PEFTAdapter.key(a, b: b), adapters.factor(a, b: b, gradient: true)) }
                }
            } else {
                for (name, g) in HFCheckpoint.hfGradients(of: model) { writer.add("grad." + name, g) }
            }
        }
        try writer.write(to: output)
        return Result(loss: loss, batch: B, sequence: T)
    }
}
