import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// ΔW between two HF model folders (`config.json` + safetensors, single or sharded) of the same
/// architecture. Every rank opens both folders, which memory-maps the files without reading them; a
/// rank then reads only the tensors of the modules it owns, so no rank holds a whole model.
///
/// Opening checks that the two models match: every tensor the base config implies must be in both
/// folders with that shape, and the tuned folder must hold nothing else; a mismatch is an
/// `AnalysisError` naming the tensor.
public final class HFFolderDeltaSource: DeltaSource, @unchecked Sendable {
    public let baseFolder: String
    public let tunedFolder: String
    public let config: ModelConfig
    public let modules: [DeltaModule]
    public let otherTensors: [DeltaTensorInfo]
    public let warnings: [String]
    private let base: TensorFolder
    private let tuned: TensorFolder
    /// HF tensors stored [in, out] (GPT-2's Conv1D), which are transposed to [out, in] on reading.
    private let storedTransposed: Set<String>

    public var baseDescription: String { baseFolder }
    public var tunedDescription: String { tunedFolder }

    public init(base baseFolder: String, tuned tunedFolder: String) throws {
        self.baseFolder = baseFolder
        self.tunedFolder = tunedFolder
        let configName = "config.json"
        let baseConfig = try ModelConfig(hfConfigAt: (baseFolder as NSString).appendingPathComponent(configName))
        let tunedConfig = try ModelConfig(hfConfigAt: (tunedFolder as NSString).appendingPathComponent(configName))
        base = try TensorFolder(folder: baseFolder)
        tuned = try TensorFolder(folder: tunedFolder)
        config = baseConfig

        let naming = HFNaming(config: baseConfig)
        let expected = naming.tensors
        for hf in expected {
            for (folder, files) in [(baseFolder, base), (tunedFolder, tuned)] {
                guard files.contains(hf.name) else {
                    throw AnalysisError(tensor: hf.name, file: folder,
                                        "missing, but the base model's config.json implies it (shape \(hf.shape))")
                }
                let info = try files.info(hf.name)
                guard info.shape == hf.shape else {
                    throw AnalysisError(tensor: hf.name, file: folder, folder == baseFolder
                        ? "shape \(info.shape), but its config.json implies \(hf.shape)"
                        : "shape \(info.shape), but \(hf.shape) in the base model: the models do not match")
                }
                guard info.dtype.isFloatingPoint else {
                    throw AnalysisError(tensor: hf.name, file: folder, "is \(info.dtype.rawValue), not a floating-point tensor")
                }
            }
        }
        let known = Set(expected.map(\.name))
        if let stray = tuned.names.first(where: { !known.contains($0) && !naming.isIgnorable($0) }) {
            throw AnalysisError(tensor: stray, file: tunedFolder,
                                "is not a tensor of the base model (\(baseConfig.family.rawValue), \(baseConfig.layerCount) layers): the models do not match")
        }
        if let stray = base.names.first(where: { !known.contains($0) && !naming.isIgnorable($0) }) {
            throw AnalysisError(tensor: stray, file: baseFolder, "is not a tensor its config.json implies")
        }

        modules = DeltaModule.modules(of: baseConfig)
        let targets = Set(modules.map(\.name))
        otherTensors = expected.filter { !targets.contains($0.name) }.map { DeltaTensorInfo(name: $0.name, shape: $0.shape) }
        storedTransposed = Set(expected.filter(\.transposed).map(\.name))
        warnings = baseConfig == tunedConfig ? [] : [
            "config.json differs (\(HFFolderDeltaSource.differences(baseConfig, tunedConfig).joined(separator: ", "))) though every tensor shape matches",
        ]
    }

    /// Fields of two configs that differ, as `name: base → tuned`.
    static func differences(_ a: ModelConfig, _ b: ModelConfig) -> [String] {
        zip(Mirror(reflecting: a).children, Mirror(reflecting: b).children).compactMap { x, y in
            let (u, v) = (String(describing: x.value), String(describing: y.value))
            return u == v ? nil : "\(x.label ?? "?"): \(u) → \(v)"
        }
    }

    /// A module's weights as [out, in], read from both folders by this rank alone.
    public func pair(_ module: DeltaModule) throws -> DeltaPair {
        func read(_ files: TensorFolder) throws -> Tensor {
            let stored = try files.tensor(module.name)
            return storedTransposed.contains(module.name) ? stored.transposed() : stored
        }
        return DeltaPair(base: try read(base), tuned: try read(tuned))
    }

    public func loadRound(owners: [Int?], communicator: any Communicator) throws -> DeltaPair? {
        guard let index = owners[communicator.rank] else { return nil }
        return try pair(modules[index])
    }

    public func otherTensorNorms(communicator: any Communicator) throws -> [SquaredNorms] {
        try distributedOtherTensorNorms(communicator: communicator) { try squaredNorms(otherTensors[$0].name) }
    }

    /// ‖T_tuned − T_base‖² and ‖T_base‖², streamed from the mapped files in chunks, so even a large
    /// embedding is never copied whole.
    public func squaredNorms(_ name: String) throws -> SquaredNorms {
        let (baseFile, tunedFile) = (try base.file(for: name), try tuned.file(for: name))
        return try baseFile.withRawBytes(name) { baseInfo, baseBytes in
            try tunedFile.withRawBytes(name) { tunedInfo, tunedBytes in
                let count = baseInfo.count
                let chunk = 1 << 14
                var b = [Float](repeating: 0, count: chunk), t = [Float](repeating: 0, count: chunk)
                var norms = SquaredNorms(delta: 0, base: 0)
                var start = 0
                while start < count {
                    let n = min(chunk, count - start)
                    decode(baseBytes, baseInfo.dtype, from: start, count: n, into: &b)
                    decode(tunedBytes, tunedInfo.dtype, from: start, count: n, into: &t)
                    for i in 0..<n {
                        let x = Double(b[i]), d = Double(t[i]) - x
                        norms.base += x * x
                        norms.delta += d * d
                    }
                    start += n
                }
                return norms
            }
        }
    }
}

/// Little-endian floats of `dtype` at element `from`… as float32.
private func decode(_ bytes: UnsafeRawBufferPointer, _ dtype: DType, from start: Int, count: Int, into out: inout [Float]) {
    switch dtype {
    case .f32:
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * (start + i), as: UInt32.self))) }
    case .f16:
        for i in 0..<count { out[i] = HalfPrecision.float(fromF16: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * (start + i), as: UInt16.self))) }
    case .bf16:
        for i in 0..<count { out[i] = HalfPrecision.float(fromBF16: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * (start + i), as: UInt16.self))) }
    case .i32, .i64:
        preconditionFailure("integer tensors are refused when the source opens")
    }
}

/// ΔW between two models held whole in memory on every rank (e.g. a base and a fine-tuned
/// `Transformer` without ZeRO-3 sharding): each owner reads its module's rows from both.
public final class ModelPairDeltaSource: DeltaSource, @unchecked Sendable {
    public let base: Transformer
    public let tuned: Transformer
    public let modules: [DeltaModule]
    public let otherTensors: [DeltaTensorInfo]
    public let baseDescription: String
    public let tunedDescription: String
    private let otherParts: [[TensorRole]]

    public init(base: Transformer, tuned: Transformer, baseDescription: String = "base", tunedDescription: String = "tuned") throws {
        guard base.config == tuned.config else {
            throw AnalysisError("the two models' configs differ: \(HFFolderDeltaSource.differences(base.config, tuned.config).joined(separator: ", "))")
        }
        self.base = base
        self.tuned = tuned
        self.baseDescription = baseDescription
        self.tunedDescription = tunedDescription
        modules = DeltaModule.modules(of: base.config)
        let targets = Set(modules.map(\.name))
        let others = HFNaming(config: base.config).tensors.filter { !targets.contains($0.name) }
        otherTensors = others.map { DeltaTensorInfo(name: $0.name, shape: $0.shape) }
        otherParts = others.map(\.parts)
    }

    /// The module's parts stacked along the output dimension, [out, in].
    private func matrix(_ model: Transformer, _ module: DeltaModule) -> Tensor {
        let linear = HFNaming(config: model.config).linearModules.first { $0.path == module.path }!
        let parts = linear.parts.map { model.tensor(.layer(linear.layer, $0)) }
        return Tensor(shape: module.shape, values: parts.flatMap(\.scalars))
    }

    public func loadRound(owners: [Int?], communicator: any Communicator) throws -> DeltaPair? {
        guard let index = owners[communicator.rank] else { return nil }
        return DeltaPair(base: matrix(base, modules[index]), tuned: matrix(tuned, modules[index]))
    }

    public func otherTensorNorms(communicator: any Communicator) throws -> [SquaredNorms] {
        try distributedOtherTensorNorms(communicator: communicator) { i in
            var norms = SquaredNorms(delta: 0, base: 0)
            for role in otherParts[i] {
                let (b, t) = (base.tensor(role), tuned.tensor(role))
                let n = squaredNorms(base: b, tuned: t)
                norms.base += n.base
                norms.delta += n.delta
            }
            return norms
        }
    }
}
