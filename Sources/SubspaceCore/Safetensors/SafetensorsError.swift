/// Why a safetensors file, or a folder of them, could not be read or written. Always names the file and,
/// where one is at fault, the tensor.
public struct SafetensorsError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The file could not be opened, mapped or written.
        case io
        /// The 8-byte length or the JSON header is malformed.
        case header
        /// One tensor's entry (dtype, shape, offsets) is invalid or inconsistent with the file.
        case entry
        /// A requested tensor is not in the file or folder.
        case missingTensor
        /// The tensor's dtype cannot be read as the requested type.
        case dtype
        /// A sharded checkpoint's index is malformed or disagrees with its shards.
        case index
    }

    public let file: String
    public let tensor: String?
    public let kind: Kind
    public let reason: String

    public init(file: String, tensor: String? = nil, _ kind: Kind, _ reason: String) {
        self.file = file
        self.tensor = tensor
        self.kind = kind
        self.reason = reason
    }

    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(reason)" }
        return "\(file): \(reason)"
    }
}
