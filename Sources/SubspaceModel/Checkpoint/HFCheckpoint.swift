import Foundation
import SubspaceCore

/// A tensor of an HF checkpoint whose name or shape does not fit the model its config describes.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public let folder: String
    public let tensor: String?
    public let reason: String
    public var description: String { tensor.map { "\(folder): tensor '\($0)': \(reason)" } ?? "\(folder): \(reason)" }
}

/// HF model folders (`config.json` + safetensors, single or sharded) to and from `Transformer`.
public enum HFCheckpoint {
    /// Loads a model folder. Every tensor the config implies must be present with its shape; f16/bf16
    /// weights are widened to f32; unknown tensors are an error (they would be silently dropped).
    public static func load(folder: String) throws -> Transformer {
        let reader = try HFModelReader(folder: folder)
        let model = Transformer(config: reader.config)
        try reader.read(0..<model.layout.totalCount, into: model.parameterStorage.pointer)
        return model
    }

    /// Splits an HF tensor into the Subspace tensors it is made of.
    static func unpack(_ hf: HFTensor, _ value: Tensor, into set: (TensorRole, Tensor) -> Void) {
        let stacked = hf.transposed ? value.transposed() : value   // [out, in] or [out]
        let inner = stacked.rank == 2 ? stacked.shape[1] : 1
        var row = 0
        for role in hf.parts {
            let rows = hf.parts.count == 1 ? stacked.shape[0] : (stacked.shape[0] / hf.parts.count)
            let shape = stacked.rank == 2 ? [rows, inner] : [rows]
            set(role, Tensor(shape: shape, values: stacked.view(offset: row * inner, shape: shape).scalars))
            row += rows
        }
    }

    /// Assembles an HF tensor from Subspace tensors (parameters or gradients).
    static func pack(_ hf: HFTensor, _ get: (TensorRole) -> Tensor) -> Tensor {
        let parts = hf.parts.map(get)
        let values = parts.flatMap(\.scalars)
        let rows = parts.reduce(0) { $0 + $1.shape[0] }
        let stacked = parts[0].rank == 2 ? Tensor(shape: [rows, parts[0].shape[1]], values: values)
                                         : Tensor(shape: [rows], values: values)
        return hf.transposed ? stacked.transposed() : stacked
    }

    /// The model's tensors under HF names.
    public static func hfTensors(of model: Transformer) -> [(name: String, tensor: Tensor)] {
        HFNaming(config: model.config).tensors.map { ($0.name, pack($0, model.tensor)) }
    }

    /// The model's gradients under HF names (zeros for frozen tensors).
    public static func hfGradients(of model: Transformer) -> [(name: String, tensor: Tensor)] {
        HFNaming(config: model.config).tensors.map { ($0.name, pack($0, model.gradient)) }
    }

    /// Writes `config.json` and `model.safetensors` (sharded past `maxShardBytes`), loadable by transformers.
    public static func save(_ model: Transformer, to folder: String, dtype: DType = .f32, maxShardBytes: Int = 5 << 30) throws {
        try TensorFolder.write(hfTensors(of: model), to: folder, dtype: dtype, maxShardBytes: maxShardBytes)
        try writeConfig(model.config, dtype: dtype, to: folder)
    }

    /// Writes `config.json` for weights stored as `dtype`.
    public static func writeConfig(_ config: ModelConfig, dtype: DType, to folder: String) throws {
        var json = config.hfConfig
        json["dtype"] = dtype == .f32 ? "float32" : dtype == .bf16 ? "bfloat16" : "float16"
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write([UInt8](data), to: (folder as NSString).appendingPathComponent("config.json"))
    }
}
