import Foundation
import SubspaceCore
import SubspaceModel

/// Turns a folder of UTF-8 text files into a token-shard folder: `train.bin`, `val.bin` (little-endian
/// ids, `uint16` when the vocabulary has at most 65,536 ids, else `int32`) and `corpus.json`.
///
/// **The validation split is the tail of each document**: the last `validationFraction` of each file's
/// UTF-8 bytes, with the cut moved forward to the start of the next line. Each part is encoded on its own,
/// so no text is in both splits. Per document rather than the tail of the concatenation because that tail
/// is whatever files sort last (for the plays: four whole plays, titus-andronicus … two-gentlemen), so the
/// validation loss would measure a few documents the model never saw any of; a tail of every document
/// measures the same mixture the model trains on, on text it has not seen. The cut at a line start keeps
/// validation text whole lines.
///
/// Files are the folder's `*.txt` (not recursive), sorted by name (byte order, the same on every
/// machine). After each document's train part, and after its validation part, the tokenizer's
/// end-of-text id is appended when it has one and the part is not empty (GPT-2's convention); the byte
/// tokenizer has none, so its documents are concatenated as they are (parts begin at line starts).
///
/// Documents are encoded several at a time on `threads` threads (a document of over 1 MiB is itself
/// split by `Tokenizer.encode(_:threads:)`), and written in order, so memory holds only the documents in
/// flight. Files are written to temporary names and renamed into place; `corpus.json` last.
public struct CorpusBuilder: Sendable {
    public static let trainFile = "train.bin"
    public static let validationFile = "val.bin"

    public let tokenizer: any Tokenizer
    /// Recorded in the manifest: `bytes` or a tokenizer.json path (made absolute).
    public let tokenizerSpecifier: String
    public let tokenizerSHA256: String?
    /// In [0, 1): 0 leaves `val.bin` empty.
    public let validationFraction: Double
    public let threads: Int

    /// Loads the tokenizer named by `tokenizer` (`bytes`, a tokenizer.json, or a folder holding one).
    public init(tokenizer specifier: String, validationFraction: Double = 0.1, threads: Int? = nil) throws {
        var recorded = specifier
        var digest: String? = nil
        if specifier != "bytes" {
            var path = URL(fileURLWithPath: specifier).standardizedFileURL.path
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
                path = (path as NSString).appendingPathComponent("tokenizer.json")
            }
            recorded = path
            if let data = FileManager.default.contents(atPath: path) {
                digest = data.withUnsafeBytes { SHA256.hex($0) }
            }
        }
        try self.init(tokenizer: try Tokenizers.load(specifier), specifier: recorded, tokenizerSHA256: digest,
                      validationFraction: validationFraction, threads: threads)
    }

    /// Uses a tokenizer already loaded; `specifier` is what the manifest records for it.
    public init(tokenizer: any Tokenizer, specifier: String, tokenizerSHA256: String? = nil,
                validationFraction: Double = 0.1, threads: Int? = nil) throws {
        guard validationFraction >= 0, validationFraction < 1 else {
            throw DataError(file: "<corpus builder>", .mismatch, "validation fraction \(validationFraction) is not in [0, 1)")
        }
        self.tokenizer = tokenizer
        self.tokenizerSpecifier = specifier
        self.tokenizerSHA256 = tokenizerSHA256
        self.validationFraction = validationFraction
        self.threads = max(1, threads ?? ThreadPolicy.decide().allowedCores)
    }

    /// The `*.txt` files of `folder`, sorted by name (byte order). Throws when the folder is missing or has none.
    public static func sourceFiles(in folder: String) throws -> [String] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) else {
            throw DataError(file: folder, .io, "no such folder")
        }
        guard isFolder.boolValue else { throw DataError(file: folder, .io, "is not a folder") }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder)
        } catch {
            throw DataError(file: folder, .io, "cannot list the folder: \(FileSystemMessage.reason(error))")
        }
        let texts = names.filter { name in
            guard name.hasSuffix(".txt"), !name.hasPrefix(".") else { return false }
            var isFolder: ObjCBool = false
            let path = (folder as NSString).appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && !isFolder.boolValue
        }
        guard !texts.isEmpty else { throw DataError(file: folder, .input, "holds no .txt files") }
        return texts.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// The byte offset where a text of `bytes` splits into train head and validation tail: the first line
    /// start at or after `(1 - validationFraction) · count`; with no line start there, that offset moved
    /// forward to a character boundary. Returns `count` when the fraction is 0.
    public static func splitOffset(_ bytes: UnsafeBufferPointer<UInt8>, validationFraction: Double) -> Int {
        let count = bytes.count
        guard validationFraction > 0, count > 0 else { return count }
        let target = min(count, Int((Double(count) * (1 - validationFraction)).rounded(.down)))
        if target == 0 || bytes[target - 1] == 0x0A { return target }
        var i = target
        while i < count, bytes[i] != 0x0A { i += 1 }
        if i < count { return i + 1 }
        var cut = target
        while cut < count, bytes[cut] & 0xC0 == 0x80 { cut += 1 }  // not inside a UTF-8 sequence
        return cut
    }

    /// What one document turned into.
    struct Encoded {
        var source: CorpusManifest.Source
        var train: [Int]
        var validation: [Int]
    }

    /// Builds the shards of `input`'s texts in `output` (created if missing) and returns the manifest it
    /// wrote. `progress` is called once per document, in order, after its tokens are written.
    @discardableResult
    public func build(input: String, output: String,
                      progress: ((CorpusManifest.Source) -> Void)? = nil) throws -> CorpusManifest {
        let files = try Self.sourceFiles(in: input)
        let dtype = TokenDType.smallest(forVocabularySize: tokenizer.vocabularySize)
        do {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        } catch {
            throw DataError(file: output, .io, "cannot create the folder: \(FileSystemMessage.reason(error))")
        }
        // A manifest left from an earlier build must not describe the new files while they are written.
        let manifestPath = (output as NSString).appendingPathComponent(CorpusManifest.fileName)
        if FileManager.default.fileExists(atPath: manifestPath) {
            do { try FileManager.default.removeItem(atPath: manifestPath) } catch {
                throw DataError(file: manifestPath, .io, "cannot remove the old manifest: \(FileSystemMessage.reason(error))")
            }
        }

        var trainWriter = ShardWriter(dtype: dtype), validationWriter = ShardWriter(dtype: dtype)
        var sources: [CorpusManifest.Source] = []
        let trainPath = (output as NSString).appendingPathComponent(Self.trainFile)
        let validationPath = (output as NSString).appendingPathComponent(Self.validationFile)
        let separator = tokenizer.endOfText
        try AtomicFile.write(to: trainPath) { trainSink in
            try AtomicFile.write(to: validationPath) { validationSink in
                // Documents in flight together: enough to keep the threads busy, few enough to bound memory.
                let group = max(1, threads)
                for start in stride(from: 0, to: files.count, by: group) {
                    let batch = Array(files[start..<min(files.count, start + group)])
                    for encoded in try encode(batch, folder: input) {
                        var source = encoded.source
                        source.trainTokens = try trainWriter.append(encoded.train, separator: separator, to: &trainSink)
                        source.validationTokens = try validationWriter.append(
                            encoded.validation, separator: separator, to: &validationSink)
                        sources.append(source)
                        progress?(source)
                    }
                }
            }
        }
        let manifest = CorpusManifest(
            tokenizer: tokenizerSpecifier, tokenizerSHA256: tokenizerSHA256, vocabularySize: tokenizer.vocabularySize,
            dtype: dtype, validationFraction: validationFraction, separator: separator,
            train: trainWriter.shard(file: Self.trainFile),
            validation: validationWriter.shard(file: Self.validationFile), sources: sources)
        try AtomicFile.write(try manifest.encoded(), to: manifestPath)
        return manifest
    }

    /// Reads, splits and encodes `files` concurrently; results in the order of `files`.
    func encode(_ files: [String], folder: String) throws -> [Encoded] {
        let results = ResultSlots<Encoded>(count: files.count)
        let perDocument = max(1, threads / files.count)
        let tokenizer = self.tokenizer, fraction = validationFraction
        DispatchQueue.concurrentPerform(iterations: files.count) { i in
            results.set(i, Result {
                let path = (folder as NSString).appendingPathComponent(files[i])
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw DataError(file: path, .io, "cannot read the file")
                }
                guard var text = String(validating: data, as: UTF8.self) else {
                    throw DataError(file: path, .input, "is not valid UTF-8 text")
                }
                let (head, tail) = text.withUTF8 { bytes in
                    let cut = Self.splitOffset(bytes, validationFraction: fraction)
                    return (String(decoding: UnsafeBufferPointer(rebasing: bytes[..<cut]), as: UTF8.self),
                            String(decoding: UnsafeBufferPointer(rebasing: bytes[cut...]), as: UTF8.self))
                }
                let train = head.isEmpty ? [] : tokenizer.encode(head, threads: perDocument)
                let validation = tail.isEmpty ? [] : tokenizer.encode(tail, threads: perDocument)
                return Encoded(
                    source: .init(file: files[i], bytes: data.count, trainBytes: head.utf8.count,
                                  trainTokens: train.count, validationTokens: validation.count),
                    train: train, validation: validation)
            })
        }
        return try results.values().map { try $0.get() }
    }
}

/// Appends ids in a shard's dtype to a file, counting and hashing as it goes.
struct ShardWriter {
    let dtype: TokenDType
    private(set) var tokens = 0
    private(set) var bytes = 0
    private var hash = SHA256()
    private var buffer: [UInt8] = []

    init(dtype: TokenDType) { self.dtype = dtype }

    /// Writes `ids` and then `separator` (if any; nothing at all for no ids); returns the tokens written.
    @discardableResult
    mutating func append(_ ids: [Int], separator: Int?, to sink: inout FileSink) throws -> Int {
        guard !ids.isEmpty else { return 0 }
        buffer.removeAll(keepingCapacity: true)
        buffer.reserveCapacity((ids.count + 1) * dtype.byteSize)
        func put(_ id: Int) {
            precondition(id >= 0 && id < dtype.capacity, "token id \(id) does not fit \(dtype)")
            switch dtype {
            case .uint16:
                let v = UInt16(id)
                buffer.append(UInt8(truncatingIfNeeded: v))
                buffer.append(UInt8(truncatingIfNeeded: v >> 8))
            case .int32:
                let v = UInt32(id)
                for shift in stride(from: 0, to: 32, by: 8) { buffer.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
            }
        }
        for id in ids { put(id) }
        if let separator { put(separator) }
        let written = ids.count + (separator == nil ? 0 : 1)
        tokens += written
        bytes += buffer.count
        try buffer.withUnsafeBytes { raw in
            hash.update(raw)
            try sink.write(raw)
        }
        return written
    }

    func shard(file: String) -> CorpusManifest.Shard {
        var h = hash
        return .init(file: file, tokens: tokens, bytes: bytes, sha256: h.finalize())
    }
}

/// One slot per concurrent iteration; each iteration writes only its own slot.
final class ResultSlots<Value>: @unchecked Sendable {
    private var slots: [Result<Value, any Error>?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ value: Result<Value, any Error>) {
        lock.lock()
        slots[i] = value
        lock.unlock()
    }

    func values() -> [Result<Value, any Error>] { slots.map { $0! } }
}
