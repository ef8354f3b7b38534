import ArgumentParser
import Foundation
import SubspaceCore
import SubspaceModel

/// `subspace forward`: one forward (and optionally backward) pass of an HF model folder, with an optional
/// PEFT adapter, on a batch from a safetensors file; writes logits, the HF causal-LM loss and gradients.
struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Logits, loss and (with --grads) gradients of an HF model (and PEFT adapter) on a batch.")

    @Option(help: "HF model folder (config.json + safetensors).") var model: String
    @Option(help: "PEFT adapter folder; the base is then frozen and only the adapter's gradients are written.") var adapter: String?
    @Option(help: "Safetensors file with input_ids (int64 or int32, [B, T]).") var input: String
    @Option(help: "Safetensors file to write.") var output: String
    @Flag(help: "Also write grad.<name> for every trainable tensor.") var grads = false

    struct InputError: Error, CustomStringConvertible { let description: String }

    func run() throws {
        let policy = ThreadPolicy.decide()
        Parallel.configure(threads: policy.threads)

        let transformer = try HFCheckpoint.load(folder: model)
        let config = transformer.config
        if let adapter {
            transformer.adapters = try PEFTAdapter.load(folder: adapter, for: config)
            transformer.frozen = Set(transformer.layout.entries.map(\.role))
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
        // HF causal-LM convention: position t predicts token t+1; the last position has no target.
        var targets = [Int32](repeating: -100, count: B * T)
        for b in 0..<B { for t in 0..<(T - 1) { targets[b * T + t] = ids[b * T + t + 1] } }

        let loss = transformer.forward(ids: ids, targets: targets, B: B, T: T) ?? .nan
        var writer = SafetensorsWriter(metadata: ["format": "pt", "producer": "subspace forward"])
        writer.add("logits", transformer.logits)
        writer.add("loss", Tensor(shape: [1], values: [loss]))
        if grads {
            transformer.zeroGradients()
            transformer.backward()
            if let adapters = transformer.adapters {
                for a in adapters.adapters {
                    for b in [false, true] {
                        writer.add("grad." + PEFTAdapter.key(a, b: b), adapters.factor(a, b: b, gradient: true))
                    }
                }
            } else {
                for (name, g) in HFCheckpoint.hfGradients(of: transformer) { writer.add("grad." + name, g) }
            }
        }
        try writer.write(to: output)
        print("loss=\(loss) batch=\(B) sequence=\(T) output=\(output)")
    }
}
