import Foundation
import SubspaceCore

/// One message of a conversation: `{"role": "user" | "assistant" | "system", "content": …}`.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    /// Parses a JSON list of `{"role", "content"}` objects; `source` names it in errors.
    public static func list(json data: Data, source: String) throws -> [ChatMessage] {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw ChatTemplateError(file: source, "is not JSON: \(FileSystemMessage.reason(error))")
        }
        guard let items = object as? [Any] else { throw ChatTemplateError(file: source, "is not a JSON list of messages") }
        return try items.enumerated().map { i, item in
            guard let m = item as? [String: Any], let role = m["role"] as? String, let content = m["content"] as? String else {
                throw ChatTemplateError(file: source, "message \(i) is not an object with string 'role' and 'content'")
            }
            return ChatMessage(role: role, content: content)
        }
    }
}

/// A chat template that cannot be used, or a conversation it cannot render. Names the file.
public struct ChatTemplateError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let reason: String
    public init(file: String, _ reason: String) {
        self.file = file
        self.reason = reason
    }
    public var description: String { "\(file): \(reason)" }
}
