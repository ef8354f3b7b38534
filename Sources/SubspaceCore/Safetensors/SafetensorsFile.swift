import Foundation

/// One tensor's entry in a safetensors header.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range within the data section (after the header).
    public let dataOffsets: Range<Int>

    public var count: Int { shape.reduce(1, *) }
}

/// A safetensors file, memory-mapped, with its header validated strictly on open.
///
/// Format: an 8-byte little-endian header length N, N bytes of JSON (an object of
/// `name: {dtype, shape, data_offsets}` plus an optional `__metadata__` string map, possibly padded
/// with spaces), then the data section. Tensors must tile the data section exactly: sorted by offset,
/// each starts where the previous ended, the first at 0 and the last ending at the end of the file.
public final class SafetensorsFile: @unchecked Sendable {
    /// Largest header accepted (the format's own limit).
    public static let maxHeaderBytes = 100_000_000

    public let path: String
    public let metadata: [String: String]
    /// Entries in file order.
    public let entries: [TensorInfo]
    private let index: [String: Int]
    private let mapping: MappedFile
    let dataStart: Int

    public var names: [String] { entries.map(\.name) }

    public init(path: String) throws {
        self.path = path
        mapping = try MappedFile(path: path)
        let bytes = mapping.bytes
        func fail(_ reason: String) -> SafetensorsError { SafetensorsError(file: path, .header, reason) }

        guard bytes.count >= 8 else { throw fail("file is \(bytes.count) bytes, too short for the 8-byte header length") }
        let headerLength = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard headerLength >= 2 else { throw fail("header length \(headerLength) is too small for a JSON object") }
        guard headerLength <= UInt64(SafetensorsFile.maxHeaderBytes) else {
            throw fail("header length \(headerLength) exceeds the limit of \(SafetensorsFile.maxHeaderBytes) bytes")
        }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(bytes.count) bytes)")
        }
        dataStart = 8 + Int(headerLength)
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart])
        guard headerBytes.first == UInt8(ascii: "{") else { throw fail("header does not start with '{'") }

        let header: RawHeader
        do {
            header = try JSONDecoder().decode(RawHeader.self, from: Data(headerBytes))
        } catch let error as DecodingError {
            throw fail("header is not valid: \(SafetensorsFile.describe(error))")
        } catch {
            throw fail("header is not valid JSON: \(error)")
        }
        metadata = header.metadata

        let dataSize = bytes.count - dataStart
        var parsed: [TensorInfo] = []
        parsed.reserveCapacity(header.tensors.count)
        for (name, raw) in header.tensors {
            func bad(_ reason: String) -> SafetensorsError { SafetensorsError(file: path, tensor: name, .entry, reason) }
            guard let dtype = DType(rawValue: raw.dtype) else {
                throw SafetensorsError(file: path, tensor: name, .dtype,
                                       "unsupported dtype '\(raw.dtype)' (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard raw.shape.allSatisfy({ $0 >= 0 }) else { throw bad("negative dimension in shape \(raw.shape)") }
            var count = 1
            for d in raw.shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw bad("shape \(raw.shape) overflows") }
                count = product
            }
            guard raw.dataOffsets.count == 2 else {
                throw bad("data_offsets must be [begin, end], got \(raw.dataOffsets.count) numbers")
            }
            let (begin, end) = (raw.dataOffsets[0], raw.dataOffsets[1])
            guard begin >= 0, begin <= end else { throw bad("data_offsets [\(begin), \(end)] are not an ascending range") }
            guard end <= dataSize else {
                throw bad("data_offsets end \(end) is past the data section (\(dataSize) bytes)")
            }
            let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, byteCount == end - begin else {
                throw bad("shape \(raw.shape) of \(dtype.rawValue) needs \(overflow ? "too many" : String(byteCount)) bytes but data_offsets span \(end - begin)")
            }
            parsed.append(TensorInfo(name: name, dtype: dtype, shape: raw.shape, dataOffsets: begin..<end))
        }
        parsed.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name) }
        var cursor = 0
        for info in parsed {
            guard info.dataOffsets.lowerBound == cursor else {
                let what = info.dataOffsets.lowerBound < cursor ? "overlaps the previous tensor (which ends at \(cursor))"
                                                                : "leaves a hole after byte \(cursor)"
                throw SafetensorsError(file: path, tensor: info.name, .entry,
                                       "data_offsets [\(info.dataOffsets.lowerBound), \(info.dataOffsets.upperBound)] \(what)")
            }
            cursor = info.dataOffsets.upperBound
        }
        guard cursor == dataSize else {
            throw SafetensorsError(file: path, .entry,
                                   "tensors cover \(cursor) bytes but the data section holds \(dataSize) (trailing bytes or truncated file)")
        }
        entries = parsed
        index = Dictionary(uniqueKeysWithValues: parsed.enumerated().map { ($1.name, $0) })
    }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    public func info(_ name: String) throws -> TensorInfo {
        guard let i = index[name] else {
            throw SafetensorsError(file: path, tensor: name, .missingTensor, "no such tensor in the file")
        }
        return entries[i]
    }

    /// The raw little-endian bytes of a tensor, valid for the lifetime of `body`.
    public func withRawBytes<R>(_ name: String, _ body: (TensorInfo, UnsafeRawBufferPointer) throws -> R) throws -> R {
        let info = try self.info(name)
        return try withExtendedLifetime(mapping) {
            let start = dataStart + info.dataOffsets.lowerBound
            return try body(info, UnsafeRawBufferPointer(rebasing: mapping.bytes[start..<(start + info.dataOffsets.count)]))
        }
    }

    /// A floating-point tensor as float32 (f16 and bf16 are widened exactly).
    public func tensor(_ name: String) throws -> Tensor {
        let info = try self.info(name)
        guard info.dtype.isFloatingPoint else {
            throw SafetensorsError(file: path, tensor: name, .dtype, "is \(info.dtype.rawValue), not a floating-point tensor")
        }
        let start = dataStart + info.dataOffsets.lowerBound
        let src = UnsafeRawBufferPointer(rebasing: mapping.bytes[start..<(start + info.dataOffsets.count)])
        return withExtendedLifetime(mapping) {
            Tensor(shape: info.shape) { dst in
                switch info.dtype {
                case .f32:
                    if let base = src.baseAddress, !dst.isEmpty {
                        UnsafeMutableRawPointer(dst.baseAddress!).copyMemory(from: base, byteCount: src.count)
                    }
                case .f16:
                    for i in 0..<dst.count {
                        dst[i] = HalfPrecision.float(fromF16: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                    }
                case .bf16:
                    for i in 0..<dst.count {
                        dst[i] = HalfPrecision.float(fromBF16: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                    }
                case .i32, .i64:
                    preconditionFailure("unreachable: integer dtype checked above")
                }
            }
        }
    }

    /// An integer tensor (i64 or i32) as Int64 values with its shape.
    public func integers(_ name: String) throws -> (shape: [Int], values: [Int64]) {
        let info = try self.info(name)
        guard !info.dtype.isFloatingPoint else {
            throw SafetensorsError(file: path, tensor: name, .dtype, "is \(info.dtype.rawValue), not an integer tensor")
        }
        let start = dataStart + info.dataOffsets.lowerBound
        let src = UnsafeRawBufferPointer(rebasing: mapping.bytes[start..<(start + info.dataOffsets.count)])
        let values: [Int64] = withExtendedLifetime(mapping) {
            switch info.dtype {
            case .i64:
                (0..<info.count).map { Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
            case .i32:
                (0..<info.count).map { Int64(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
            case .f32, .f16, .bf16:
                preconditionFailure("unreachable: floating-point dtype checked above")
            }
        }
        return (info.shape, values)
    }

    static func describe(_ error: DecodingError) -> String {
        func at(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map(\.stringValue).filter { !$0.isEmpty }.joined(separator: ".")
            return (path.isEmpty ? "" : "at '\(path)': ") + context.debugDescription
        }
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): return at(c)
        case .keyNotFound(let key, let c): return at(c) + " (missing key '\(key.stringValue)')"
        @unknown default: return "\(error)"
        }
    }
}

/// The header as JSON: tensor entries under arbitrary keys plus an optional `__metadata__` map.
private struct RawHeader: Decodable {
    struct Entry: Decodable {
        let dtype: String
        let shape: [Int]
        let dataOffsets: [Int]
        enum CodingKeys: String, CodingKey {
            case dtype, shape
            case dataOffsets = "data_offsets"
        }
    }

    struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    var metadata: [String: String] = [:]
    var tensors: [(String, Entry)] = []

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys {
            if key.stringValue == "__metadata__" {
                metadata = try container.decode([String: String].self, forKey: key)
            } else {
                tensors.append((key.stringValue, try container.decode(Entry.self, forKey: key)))
            }
        }
    }
}
