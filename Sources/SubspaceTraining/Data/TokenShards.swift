import Foundation
import SubspaceCore

/// The ids of one split, read from a memory-mapped shard file.
public struct TokenArray: Sendable, RandomAccessCollection {
    public let dtype: TokenDType
    public let count: Int
    private let file: MappedFile?

    init(file: MappedFile?, dtype: TokenDType, count: Int) {
        self.file = file
        self.dtype = dtype
        self.count = count
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> Int32 {
        precondition(position >= 0 && position < count, "token \(position) of \(count)")
        let bytes = file!.bytes
        switch dtype {
        case .uint16: return Int32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * position, as: UInt16.self)))
        case .int32: return Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * position, as: Int32.self))
        }
    }

    /// Copies ids `range` into `destination` (which must hold `range.count`).
    public func copy(_ range: Range<Int>, into destination: UnsafeMutableBufferPointer<Int32>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "tokens \(range) of \(count)")
        precondition(destination.count >= range.count, "destination too small")
        guard !range.isEmpty, let bytes = file?.bytes else { return }
        switch dtype {
        case .uint16:
            for (i, position) in range.enumerated() {
                destination[i] = Int32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * position, as: UInt16.self)))
            }
        case .int32:
            for (i, position) in range.enumerated() {
                destination[i] = Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * position, as: Int32.self))
            }
        }
    }
}

/// A token-shard folder written by `CorpusBuilder`, memory-mapped and checked against its manifest.
///
/// Opening checks, and names the file in a `DataError` on failure: `corpus.json` is readable, of this
/// format, and consistent (token counts sum over sources, dtype wide enough for the vocabulary); each
/// `.bin` exists, has exactly tokens × dtype-size bytes, and (unless `verifyChecksums` is false) the
/// SHA-256 the manifest records. Hashing reads the whole file once: about 10 MB for the plays.
public final class TokenShards: Sendable {
    public let folder: String
    public let manifest: CorpusManifest
    public let train: TokenArray
    public let validation: TokenArray

    public enum Split: String, Sendable, CaseIterable {
        case train, validation
    }

    public init(folder: String, verifyChecksums: Bool = true) throws {
        self.folder = folder
        let manifestPath = (folder as NSString).appendingPathComponent(CorpusManifest.fileName)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw DataError(file: folder, .io, "no such folder")
        }
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            throw DataError(file: manifestPath, .io, "missing or unreadable (is this a folder made by `subspace data corpus`?)")
        }
        let manifest: CorpusManifest
        do {
            manifest = try JSONDecoder().decode(CorpusManifest.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.last?.stringValue == "dtype" {
                throw DataError(file: manifestPath, .dtype,
                                "unknown dtype (known: \(TokenDType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            throw DataError(file: manifestPath, .manifest, FileSystemMessage.describe(error))
        } catch {
            throw DataError(file: manifestPath, .manifest, "not valid JSON: \(FileSystemMessage.reason(error))")
        }
        self.manifest = manifest
        try Self.checkConsistency(manifest, path: manifestPath)
        train = try Self.open(manifest.train, dtype: manifest.dtype, folder: folder, verify: verifyChecksums)
        validation = try Self.open(manifest.validation, dtype: manifest.dtype, folder: folder, verify: verifyChecksums)
    }

    public func tokens(_ split: Split) -> TokenArray {
        switch split {
        case .train: train
        case .validation: validation
        }
    }

    /// Throws unless ids of this corpus are valid inputs to a model with `vocabularySize` rows.
    public func checkFits(vocabularySize: Int) throws {
        guard manifest.vocabularySize <= vocabularySize else {
            throw DataError(file: (folder as NSString).appendingPathComponent(CorpusManifest.fileName), .mismatch,
                            "the corpus's vocabulary (\(manifest.vocabularySize) ids, tokenizer \(manifest.tokenizer)) is larger than the model's (\(vocabularySize))")
        }
    }

    static func checkConsistency(_ m: CorpusManifest, path: String) throws {
        guard m.format == CorpusManifest.currentFormat else {
            throw DataError(file: path, .manifest, "format '\(m.format)' is not '\(CorpusManifest.currentFormat)'")
        }
        guard m.vocabularySize > 0 else { throw DataError(file: path, .manifest, "vocabulary_size \(m.vocabularySize) is not positive") }
        guard m.vocabularySize <= m.dtype.capacity else {
            throw DataError(file: path, .dtype, "dtype \(m.dtype.rawValue) cannot hold \(m.vocabularySize) ids")
        }
        for shard in [m.train, m.validation] {
            guard shard.tokens >= 0, shard.bytes == shard.tokens * m.dtype.byteSize else {
                throw DataError(file: path, .manifest,
                                "\(shard.file): \(shard.bytes) bytes is not \(shard.tokens) tokens × \(m.dtype.byteSize) bytes")
            }
            guard !shard.file.isEmpty, !shard.file.contains("/"), shard.file != ".", shard.file != ".." else {
                throw DataError(file: path, .manifest, "shard file '\(shard.file)' is not a plain file name")
            }
        }
        let trainSum = m.sources.reduce(0) { $0 + $1.trainTokens }
        let validationSum = m.sources.reduce(0) { $0 + $1.validationTokens }
        guard trainSum == m.train.tokens, validationSum == m.validation.tokens else {
            throw DataError(file: path, .manifest,
                            "sources add up to \(trainSum) train and \(validationSum) validation tokens, shards hold \(m.train.tokens) and \(m.validation.tokens)")
        }
    }

    static func open(_ shard: CorpusManifest.Shard, dtype: TokenDType, folder: String, verify: Bool) throws -> TokenArray {
        let path = (folder as NSString).appendingPathComponent(shard.file)
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch let error as SafetensorsError { throw DataError(file: path, .io, error.reason) }
        guard file.bytes.count == shard.bytes else {
            throw DataError(file: path, .size,
                            "\(file.bytes.count) bytes, but corpus.json says \(shard.tokens) \(dtype.rawValue) tokens = \(shard.bytes) bytes")
        }
        if verify {
            let digest = SHA256.hex(file.bytes)
            guard digest == shard.sha256.lowercased() else {
                throw DataError(file: path, .checksum, "SHA-256 \(digest) is not corpus.json's \(shard.sha256): the file is corrupt or from another build")
            }
        }
        return TokenArray(file: file, dtype: dtype, count: shard.tokens)
    }
}
