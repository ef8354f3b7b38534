/// Why data on disk (a token-shard folder, a JSONL file, a folder of texts) could not be used. Always names
/// the file, and the line where there is one.
public struct DataError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Missing, unreadable or unwritable file or folder.
        case io
        /// A folder of texts with nothing to read, or a text that is not UTF-8.
        case input
        /// `corpus.json` is missing a field, has an unknown format or contradicts itself.
        case manifest
        /// A `.bin` file's size is not the manifest's token count times the dtype's size.
        case size
        /// A dtype this implementation does not know, or one too small for the vocabulary.
        case dtype
        /// A `.bin` file's SHA-256 differs from the manifest's.
        case checksum
        /// A JSONL line that is not one of the accepted example shapes.
        case jsonl
        /// Data that does not suit the request (no example fits the sequence length, a vocabulary larger
        /// than the model's, …).
        case mismatch
    }

    public let file: String
    /// 1-based line number, for line-oriented files.
    public let line: Int?
    public let kind: Kind
    public let reason: String

    public init(file: String, line: Int? = nil, _ kind: Kind, _ reason: String) {
        self.file = file
        self.line = line
        self.kind = kind
        self.reason = reason
    }

    public var description: String {
        if let line { return "\(file):\(line): \(reason)" }
        return "\(file): \(reason)"
    }
}
