import Foundation
import SubspaceCore

/// A model's weights on disk, readable in pieces of the flat Subspace layout: an HF folder
/// (`HFModelReader`) or a Subspace training checkpoint (`CheckpointWeights` in SubspaceTraining).
public protocol ModelWeightReader: AnyObject {
    var config: ModelConfig { get }
    var layout: ParameterLayout { get }
    /// What it is (a folder path), for messages and outputs.
    var description: String { get }
    /// Copies elements `range` (global offsets of the flat layout; padding reads as 0) into `destination`.
    func read(_ range: Range<Int>, into destination: UnsafeMutablePointer<Float>) throws
}

extension ModelWeightReader {
    /// One tensor, [out, in] for a weight (Subspace layout).
    public func tensor(_ role: TensorRole) throws -> Tensor {
        let e = layout[role]
        var values = [Float](repeating: 0, count: e.count)
        try values.withUnsafeMutableBufferPointer { try read(e.range, into: $0.baseAddress!) }
        return Tensor(shape: e.shape, values: values)
    }
}

/// An HF model folder (single or sharded safetensors; f32, f16 or bf16) opened for reading in pieces.
///
/// Opening memory-maps the files and checks every name and shape against `config.json` (as
/// `HFCheckpoint.load` does) without reading any weight. `read(_:into:)` then copies any range of the
/// flat Subspace layout — e.g. one ZeRO-3 rank's part of one block — straight from the mapped files,
/// splitting fused HF tensors (GPT-2's c_attn) and transposing Conv1D weights element by element, so a
/// rank never holds more than what it asked for.
public final class HFModelReader: ModelWeightReader, @unchecked Sendable {
    public let folder: String
    public let config: ModelConfig
    public let layout: ParameterLayout
    let files: TensorFolder
    /// Per layout entry (index): the HF tensor it is part of and the row where its part starts.
    let sources: [(hf: HFTensor, rowOffset: Int)]

    public init(folder: String) throws {
        self.folder = folder
        let config = try ModelConfig(hfConfigAt: (folder as NSString).appendingPathComponent("config.json"))
        let files = try TensorFolder(folder: folder)
        // Every layer has at least one tensor: this bounds the layer count before the names are even listed
        // (config.json n_layer: 1e9 over 3 layers of weights).
        guard config.layerCount <= files.names.count else {
            throw CheckpointError(folder: folder, tensor: nil,
                                  reason: "config.json says \(config.layerCount) layers, but the weights hold only \(files.names.count) tensors")
        }
        let naming = HFNaming(config: config)
        let expected = naming.tensors
        let known = Set(expected.map(\.name))
        if let stray = files.names.first(where: { !known.contains($0) && !naming.isIgnorable($0) }) {
            throw CheckpointError(folder: folder, tensor: stray, reason: "not a tensor of a \(config.family.rawValue) model with this config.json")
        }
        // Every shape from the files' headers, so sizes config.json claims are checked before allocating them.
        for hf in expected {
            guard files.contains(hf.name) else {
                throw CheckpointError(folder: folder, tensor: hf.name, reason: "missing (expected shape \(hf.shape))")
            }
            let info = try files.info(hf.name)
            guard info.shape == hf.shape else {
                throw CheckpointError(folder: folder, tensor: hf.name, reason: "shape \(info.shape), but config.json implies \(hf.shape)")
            }
            guard info.dtype.isFloatingPoint else {
                throw CheckpointError(folder: folder, tensor: hf.name, reason: "is \(info.dtype.rawValue), not a floating-point tensor")
            }
        }
        let layout = ParameterLayout(config: config)
        var byRole: [TensorRole: (HFTensor, Int)] = [:]
        for hf in expected {
            var row = 0
            for role in hf.parts {
                byRole[role] = (hf, row)
                row += layout[role].shape[0]
            }
        }
        self.config = config
        self.layout = layout
        self.files = files
        sources = layout.entries.map { byRole[$0.role]! }
    }

    public var description: String { folder }

    /// Copies elements `range` (global offsets of the flat layout; padding reads as 0) into `destination`.
    public func read(_ range: Range<Int>, into destination: UnsafeMutablePointer<Float>) throws {
        destination.update(repeating: 0, count: range.count)
        for (i, e) in layout.entries.enumerated() {
            let piece = e.range.clamped(to: range)
            if piece.isEmpty { continue }
            let (hf, rowOffset) = sources[i]
            let out = destination + (piece.lowerBound - range.lowerBound)
            let first = piece.lowerBound - e.offset
            let inner = e.shape.count == 2 ? e.shape[1] : 1
            try files.file(for: hf.name).withRawBytes(hf.name) { info, bytes in
                let load: (Int) -> Float
                switch info.dtype {
                case .f32: load = { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
                case .f16: load = { HalfPrecision.float(fromF16: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
                case .bf16: load = { HalfPrecision.float(fromBF16: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
                case .i32, .i64: preconditionFailure("unreachable: dtypes checked on open")
                }
                if hf.transposed {
                    // The file holds [in, out]; the part is rows rowOffset… of its transpose [out, in].
                    let outTotal = info.shape[1]
                    for k in 0..<piece.count {
                        let local = first + k
                        out[k] = load((local % inner) * outTotal + rowOffset + local / inner)
                    }
                } else {
                    let start = rowOffset * inner + first
                    if info.dtype == .f32, let base = bytes.baseAddress {
                        UnsafeMutableRawPointer(out).copyMemory(from: base + 4 * start, byteCount: 4 * piece.count)
                    } else {
                        for k in 0..<piece.count { out[k] = load(start + k) }
                    }
                }
            }
        }
    }
}

/// Writing an HF folder block by block, so that no rank ever holds the whole model (ZeRO-3's final
/// export). The HF tensors, in HF order, fall into files of at most `maxShardBytes` (a model that fits
/// is one `model.safetensors`, as `HFCheckpoint.save` writes it; larger ones are `model-0000i-of-0000n`
/// shards plus `model.safetensors.index.json`), each file a contiguous run of blocks; file i is written
/// by rank i mod N. Every rank sees every block in turn, one at a time (at ZeRO-3: gathered into the
/// block buffer training uses), and the rank that writes a block's file streams its tensors out; rank 0
/// writes the index and `config.json`. transformers loads either form.
public struct HFBlockExport: Sendable {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let dtype: DType
    /// Per block, the HF tensors that start in it (in HF order; a tensor cut into vocabulary slices starts
    /// in its first slice's block, every other HF tensor lies in one block).
    let tensors: [[HFTensor]]
    /// Per block, what it writes: each HF tensor's elements in it (a slice's rows, or the whole tensor).
    let pieces: [[(hf: HFTensor, elements: Range<Int>)]]
    /// Per file, its blocks (contiguous, in order; a sliced tensor's blocks are never split over files).
    public let files: [Range<Int>]
    let ranks: Int

    public init(config: ModelConfig, ranks: Int, dtype: DType = .f32, maxShardBytes: Int = 5 << 30) {
        self.config = config
        self.dtype = dtype
        self.ranks = max(ranks, 1)
        let layout = ParameterLayout(config: config)
        self.layout = layout
        var tensors = [[HFTensor]](repeating: [], count: layout.blockCount)
        var pieces = [[(hf: HFTensor, elements: Range<Int>)]](repeating: [], count: layout.blockCount)
        var continues = [Bool](repeating: false, count: layout.blockCount)  // a block continuing a sliced tensor
        for hf in HFNaming(config: config).tensors {
            let role = hf.parts[0]
            let blocks = layout.blocks(of: role)
            tensors[blocks.lowerBound].append(hf)
            guard layout.isSliced(role) else { pieces[blocks.lowerBound].append((hf, 0..<hf.shape.reduce(1, *))); continue }
            let e = layout[role]
            for b in blocks {
                let local = e.range.clamped(to: layout.blockRanges[b])
                pieces[b].append((hf, (local.lowerBound - e.offset)..<(local.upperBound - e.offset)))
                if b > blocks.lowerBound { continues[b] = true }
            }
        }
        self.tensors = tensors
        self.pieces = pieces
        // A new file starts at a block that would take the current one past maxShardBytes.
        var files: [Range<Int>] = [], first = 0, bytes = 0
        for b in tensors.indices {
            let size = pieces[b].reduce(0) { $0 + $1.elements.count * dtype.byteSize }
            if b > first && !continues[b] && bytes + size > maxShardBytes { files.append(first..<b); first = b; bytes = 0 }
            bytes += size
        }
        files.append(first..<tensors.count)
        self.files = files
    }

    /// The name of file `i`.
    public func fileName(_ i: Int) -> String {
        files.count == 1 ? TensorFolder.singleName : String(format: "model-%05d-of-%05d.safetensors", i + 1, files.count)
    }

    /// The rank that writes file `i`.
    public func writer(ofFile i: Int) -> Int { i % ranks }

    /// Runs the export on one rank: `block(b)` is called for every block in order on every rank (it may be
    /// collective, e.g. an all-gather) and returns the block's parameters (block-local addressing), valid
    /// until the next call. Each file goes to a temporary name and is renamed into place when complete.
    /// A rank whose writing fails keeps calling `block` for the remaining blocks (so no peer is left in a
    /// collective) and throws at the end; the caller agrees on the outcome across ranks.
    public func writeFiles(rank: Int, folder: String, block: (Int) throws -> UnsafePointer<Float>) throws {
        var failure: (any Error)?
        for (i, blocks) in files.enumerated() {
            var next = blocks.lowerBound
            if writer(ofFile: i) == rank && failure == nil {
                let mine = blocks.flatMap { tensors[$0] }
                do {
                    let header = try SafetensorsWriter.headerBytes(mine.map { ($0.name, $0.shape, dtype) }, metadata: ["format": "pt"])
                    try AtomicFile.write(to: (folder as NSString).appendingPathComponent(fileName(i))) { (sink: inout FileSink) throws in
                        try SafetensorsWriter.writeHeader(header, into: &sink)
                        while next < blocks.upperBound {
                            let b = next
                            next += 1
                            let values = try block(b)
                            for piece in pieces[b] { try write(piece.hf, elements: piece.elements, block: b, values: values, into: &sink) }
                        }
                    }
                } catch {
                    failure = error
                }
            }
            while next < blocks.upperBound { _ = try block(next); next += 1 }
        }
        if let failure { throw failure }
    }

    /// One HF tensor's `elements` in block `b` from the block's values: a single untransposed part straight
    /// from the block (the embeddings need no copy; a vocabulary slice writes its rows, the slices in
    /// order making the tensor), otherwise assembled (a layer-sized temporary).
    func write(_ hf: HFTensor, elements: Range<Int>, block b: Int, values: UnsafePointer<Float>, into sink: inout FileSink) throws {
        let base = layout.blockRanges[b].lowerBound
        if hf.parts.count == 1 && !hf.transposed {
            let e = layout[hf.parts[0]]
            return try SafetensorsWriter.writeValues(UnsafeBufferPointer(start: values + (e.offset + elements.lowerBound - base), count: elements.count),
                                                     as: dtype, into: &sink)
        }
        precondition(elements.count == hf.shape.reduce(1, *), "\(hf.name) is split over blocks")
        let packed = HFCheckpoint.pack(hf) { role in
            let e = layout[role]
            return Tensor(shape: e.shape, values: Array(UnsafeBufferPointer(start: values + (e.offset - base), count: e.count)))
        }
        try packed.withUnsafeBufferPointer { (p: UnsafeBufferPointer<Float>) throws in try SafetensorsWriter.writeValues(p, as: dtype, into: &sink) }
    }

    /// Rank 0, once every file is in place: the index (several files) and `config.json`.
    public func finish(folder: String) throws {
        if files.count > 1 {
            var weightMap: [String: String] = [:]
            var total = 0
            for (i, blocks) in files.enumerated() {
                for hf in blocks.flatMap({ tensors[$0] }) {
                    weightMap[hf.name] = fileName(i)
                    total += hf.shape.reduce(1, *) * dtype.byteSize
                }
            }
            let index: [String: Any] = ["metadata": ["total_size": total], "weight_map": weightMap]
            let json = try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
            try AtomicFile.write([UInt8](json), to: (folder as NSString).appendingPathComponent(TensorFolder.indexName))
        }
        try HFCheckpoint.writeConfig(config, dtype: dtype, to: folder)
    }
}
