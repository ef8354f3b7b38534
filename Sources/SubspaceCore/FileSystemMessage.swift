import Foundation

/// File-system and JSON-parsing errors as one plain sentence (the reason, without Foundation's domain,
/// code and user-info dump), for messages that already name the key and the path.
public enum FileSystemMessage {
    public static func reason(_ error: any Error) -> String {
        if let decoding = error as? DecodingError { return describe(decoding) }
        let ns = error as NSError
        let path = ns.userInfo[NSFilePathErrorKey] as? String
        // The underlying error is a Swift `POSIXError` on Linux: `as? NSError` would not match it.
        if let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? any Error).map({ $0 as NSError }),
           underlying.domain == NSPOSIXErrorDomain,
           let code = POSIXErrorCode(rawValue: Int32(underlying.code)) {
            return posix(code.rawValue, path: path)
        }
        if ns.domain == NSPOSIXErrorDomain { return posix(Int32(ns.code), path: path) }
        if ns.domain == NSCocoaErrorDomain {
            switch CocoaError.Code(rawValue: ns.code) {
            case .fileWriteFileExists: return "a file is in the way"
            case .fileWriteNoPermission, .fileReadNoPermission: return "permission denied"
            case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or folder"
            case .fileWriteOutOfSpace: return "no space left on the device"
            case .fileWriteVolumeReadOnly: return "read-only file system"
            case .propertyListReadCorrupt:
                // JSONSerialization's parse errors (3840) carry where the text goes wrong only here.
                if let detail = ns.userInfo["NSDebugDescription"] as? String { return lowercasedFirst(detail) }
            default: break
            }
        }
        return error.localizedDescription
    }

    /// A `Decodable` type's complaint about a JSON file, naming where in it: "missing 'step' at the top
    /// level", "wrong type at shards.0.tokens: …", "not valid JSON: …".
    public static func describe(_ error: DecodingError) -> String {
        func at(_ path: [any CodingKey]) -> String {
            path.isEmpty ? "the top level" : path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing '\(key.stringValue)' at \(at(context.codingPath))"
        case .typeMismatch(_, let context): return "wrong type at \(at(context.codingPath)): \(context.debugDescription)"
        case .valueNotFound(_, let context): return "null at \(at(context.codingPath))"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON: \(context.debugDescription)"
                : "bad value at \(at(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    /// The common codes in the same words as the Cocoa ones above; "Not a directory" (a path component
    /// is a file) names the component when the path shows it: "afile is a file, not a folder"; any other
    /// code is strerror's sentence.
    private static func posix(_ code: Int32, path: String?) -> String {
        switch code {
        case ENOENT: return "no such file or folder"
        case EACCES, EPERM: return "permission denied"
        case ENOSPC: return "no space left on the device"
        case EROFS: return "read-only file system"
        case ENOTDIR:
            if let path, let file = firstFileComponent(of: path) { return "\(file) is a file, not a folder" }
        default: break
        }
        return String(cString: strerror(code))
    }

    /// The shortest leading part of `path` that exists and is not a folder, if any.
    static func firstFileComponent(of path: String) -> String? {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + component
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: prefix, isDirectory: &isFolder) else { return nil }
            if !isFolder.boolValue { return prefix }
        }
        return nil
    }

    private static func lowercasedFirst(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.lowercased() + text.dropFirst()
    }
}
