import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// What `subspace heads importance` does: load an HF model folder (and a PEFT adapter), read `input_ids`
/// [N, T] from a safetensors file (labels = the ids, HF convention), measure `HeadScores` across the
/// communicator's ranks and write them as JSON (rank 0): `layers`, `heads`, `loss`, and the L×H arrays
/// `ablation`, `taylor`, `fisher`, `gradient`, `taylor_layer_normalized`, indexed [layer][head].
public enum HeadImportanceFile {
    public static func run(model folder: String, adapter: String?, input: String, output: String,
                           microBatch: Int = 8, communicator: any Communicator,
                           events: (HeadImportance.Event) -> Void = { _ in }) throws -> HeadScores {
        let model = try HFCheckpoint.load(folder: folder)
        if let adapter { model.adapters = try PEFTAdapter.load(folder: adapter, for: model.config) }
        let batch = try SafetensorsFile(path: input)
        guard batch.contains("input_ids") else { throw AnalysisError(file: input, "no tensor named 'input_ids'") }
        let (shape, values) = try batch.integers("input_ids")
        guard shape.count == 2, shape[0] >= 1, shape[1] >= 2 else {
            throw AnalysisError(tensor: "input_ids", file: input, "must be [N, T] with N ≥ 1, T ≥ 2, got \(shape)")
        }
        let (N, T) = (shape[0], shape[1])
        guard T <= model.config.maxPositions else {
            throw AnalysisError(tensor: "input_ids", file: input, "sequence length \(T) exceeds the model's \(model.config.maxPositions) positions")
        }
        if let bad = values.first(where: { $0 < 0 || $0 >= Int64(model.config.vocabularySize) }) {
            throw AnalysisError(tensor: "input_ids", file: input, "holds \(bad), outside the vocabulary 0..<\(model.config.vocabularySize)")
        }
        let samples = SequenceSamples(causalLM: values.map { Int32($0) }, count: N, sequence: T)
        let scores = try HeadImportance.measure(model: model, samples: samples, options: .init(microBatch: microBatch),
                                                communicator: communicator, events: events)
        if communicator.rank == 0 { try write(scores, to: output) }
        return scores
    }

    /// Writes any encodable value as pretty JSON, atomically.
    public static func write(_ value: some Encodable, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // A diverged sweep run scores +∞: written as a string rather than failing the whole report.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        try encoder.encode(value).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
