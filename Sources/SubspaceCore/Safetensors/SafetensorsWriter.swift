import Foundation

/// Builds a safetensors file: tensors are added by name (keeping references, not copies) and converted
/// to their stored dtype while streaming to disk. Files are written to a temporary name and renamed into
/// place, so a crash mid-write never leaves a damaged file under the final name.
public struct SafetensorsWriter {
    enum Payload {
        case float(Tensor, DType)
        case int64([Int64], DType)
    }

    struct Item {
        let name: String
        let shape: [Int]
        let payload: Payload
        var dtype: DType {
            switch payload {
            case .float(_, let d), .int64(_, let d): d
            }
        }
        var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
    }

    public var metadata: [String: String]
    private(set) var items: [Item] = []
    private var names: Set<String> = []

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    public var isEmpty: Bool { items.isEmpty }
    /// Bytes the data section will take.
    public var dataByteCount: Int { items.reduce(0) { $0 + $1.byteCount } }

    /// Adds a float tensor, stored as `dtype` (f32, f16 or bf16).
    public mutating func add(_ name: String, _ tensor: Tensor, as dtype: DType = .f32) {
        precondition(dtype.isFloatingPoint, "tensor '\(name)': \(dtype.rawValue) is not a float dtype")
        insert(Item(name: name, shape: tensor.shape, payload: .float(tensor, dtype)))
    }

    /// Adds an integer tensor, stored as `dtype` (i64 or i32; values must fit).
    public mutating func add(_ name: String, integers: [Int64], shape: [Int], as dtype: DType = .i64) {
        precondition(!dtype.isFloatingPoint, "tensor '\(name)': \(dtype.rawValue) is not an integer dtype")
        precondition(integers.count == shape.reduce(1, *), "tensor '\(name)': \(integers.count) values for shape \(shape)")
        if dtype == .i32 {
            precondition(integers.allSatisfy { Int32(exactly: $0) != nil }, "tensor '\(name)': value out of i32 range")
        }
        insert(Item(name: name, shape: shape, payload: .int64(integers, dtype)))
    }

    private mutating func insert(_ item: Item) {
        precondition(item.name != "__metadata__", "'__metadata__' is reserved")
        precondition(names.insert(item.name).inserted, "tensor '\(item.name)' added twice")
        items.append(item)
    }

    /// The JSON header, padded with spaces to a multiple of 8 bytes so the data section stays aligned.
    func headerBytes() throws -> [UInt8] {
        try Self.headerBytes(items.map { ($0.name, $0.shape, $0.dtype) }, metadata: metadata)
    }

    /// The header of a file holding `entries` in this order: with the 8-byte length before it and the
    /// tensors' bytes after it in the same order, a file can be streamed tensor by tensor (see
    /// `writeValues`) without holding every tensor at once.
    public static func headerBytes(_ entries: [(name: String, shape: [Int], dtype: DType)], metadata: [String: String]) throws -> [UInt8] {
        var object: [String: Any] = [:]
        if !metadata.isEmpty { object["__metadata__"] = metadata }
        var offset = 0
        for e in entries {
            let byteCount = e.shape.reduce(1, *) * e.dtype.byteSize
            object[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape,
                              "data_offsets": [offset, offset + byteCount]] as [String: Any]
            offset += byteCount
        }
        let json: Data
        do {
            json = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        } catch {
            throw SafetensorsError(file: "<header>", .header, "cannot encode header: \(error)")
        }
        var bytes = [UInt8](json)
        while (8 + bytes.count) % 8 != 0 { bytes.append(UInt8(ascii: " ")) }
        return bytes
    }

    /// Writes the file atomically (temporary file in the same folder, fsync, rename).
    public func write(to path: String) throws {
        let header = try headerBytes()
        try AtomicFile.write(to: path) { (sink: inout FileSink) throws in
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { (p: UnsafeRawBufferPointer) throws in try sink.write(p) }
            try header.withUnsafeBytes { (p: UnsafeRawBufferPointer) throws in try sink.write(p) }
            for item in items { try SafetensorsWriter.stream(item, into: &sink) }
        }
    }

    /// Writes the 8-byte length and the header of a streamed file (see `headerBytes(_:metadata:)`).
    public static func writeHeader(_ header: [UInt8], into sink: inout FileSink) throws {
        var length = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &length) { (p: UnsafeRawBufferPointer) throws in try sink.write(p) }
        try header.withUnsafeBytes { (p: UnsafeRawBufferPointer) throws in try sink.write(p) }
    }

    /// Converts float values to `dtype` in chunks and writes them.
    public static func writeValues(_ src: UnsafeBufferPointer<Float>, as dtype: DType, into sink: inout FileSink) throws {
        precondition(dtype.isFloatingPoint, "\(dtype.rawValue) is not a float dtype")
        if dtype == .f32 { return try sink.write(UnsafeRawBufferPointer(src)) }
        let chunk = 1 << 16
        var buffer = [UInt16](repeating: 0, count: chunk)
        var start = 0
        while start < src.count {
            let n = min(chunk, src.count - start)
            for i in 0..<n {
                let v = src[start + i]
                buffer[i] = (dtype == .bf16 ? HalfPrecision.bf16(from: v) : HalfPrecision.f16(from: v)).littleEndian
            }
            try buffer.withUnsafeBytes { (p: UnsafeRawBufferPointer) throws in
                try sink.write(UnsafeRawBufferPointer(rebasing: p[0..<(2 * n)]))
            }
            start += n
        }
    }

    /// Converts and writes one tensor in chunks, so no second full copy of the model is made.
    private static func stream(_ item: Item, into sink: inout FileSink) throws {
        switch item.payload {
        case .float(let tensor, let dtype):
            try tensor.withUnsafeBufferPointer { (p: UnsafeBufferPointer<Float>) throws in
                try writeValues(p, as: dtype, into: &sink)
            }
        case .int64(let values, .i64):
            let le = values.map(\.littleEndian)
            try le.withUnsafeBytes { (p: UnsafeRawBufferPointer) throws in try sink.write(p) }
        case .int64(let values, _):
            let le = values.map { Int32(truncatingIfNeeded: $0).littleEndian }
            try le.withUnsafeBytes { (p: UnsafeRawBufferPointer) throws in try sink.write(p) }
        }
    }
}
