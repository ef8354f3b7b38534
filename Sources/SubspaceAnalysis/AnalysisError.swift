/// Why an analysis or a comparison could not run: two models that do not match, a run folder missing
/// what it needs, a malformed metrics line. Names the tensor or file at fault.
public struct AnalysisError: Error, CustomStringConvertible, Sendable {
    /// The HF tensor (or module) at fault, if one is.
    public let tensor: String?
    /// The file or folder at fault, if one is.
    public let file: String?
    public let reason: String

    public init(tensor: String? = nil, file: String? = nil, _ reason: String) {
        self.tensor = tensor
        self.file = file
        self.reason = reason
    }

    public var description: String {
        var parts: [String] = []
        if let file { parts.append(file) }
        if let tensor { parts.append("tensor '\(tensor)'") }
        parts.append(reason)
        return parts.joined(separator: ": ")
    }
}
