import Foundation

/// What a model folder's `tokenizer_config.json` (and `chat_template.jinja`, as transformers 5 saves it)
/// says beyond `tokenizer.json`: BOS/EOS tokens and the chat template.
public struct TokenizerConfig: Sendable, Equatable {
    public var bosToken: String?
    public var eosToken: String?
    public var chatTemplate: String?
    /// The file the template came from, for errors.
    public var chatTemplateFile: String?

    public init(bosToken: String? = nil, eosToken: String? = nil, chatTemplate: String? = nil, chatTemplateFile: String? = nil) {
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.chatTemplate = chatTemplate
        self.chatTemplateFile = chatTemplateFile
    }

    /// The configuration beside a tokenizer specifier: for a folder, its files; for a tokenizer.json, the
    /// files in the same folder; nil when there are none (or for `bytes`).
    public static func near(_ specifier: String) throws -> TokenizerConfig? {
        if specifier == "bytes" { return nil }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: specifier, isDirectory: &isFolder) else { return nil }
        let folder = isFolder.boolValue ? specifier : (specifier as NSString).deletingLastPathComponent
        return try load(folder: folder.isEmpty ? "." : folder)
    }

    /// Reads `tokenizer_config.json` and `chat_template.jinja` in `folder`; nil when neither exists.
    public static func load(folder: String) throws -> TokenizerConfig? {
        let configPath = (folder as NSString).appendingPathComponent("tokenizer_config.json")
        let jinjaPath = (folder as NSString).appendingPathComponent("chat_template.jinja")
        let fm = FileManager.default
        guard fm.fileExists(atPath: configPath) || fm.fileExists(atPath: jinjaPath) else { return nil }
        var config = TokenizerConfig()
        if let data = fm.contents(atPath: configPath) {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ChatTemplateError(file: configPath, "is not a JSON object")
            }
            config.bosToken = tokenContent(object["bos_token"])
            config.eosToken = tokenContent(object["eos_token"])
            if let template = object["chat_template"] as? String {
                config.chatTemplate = template
                config.chatTemplateFile = configPath
            } else if let list = object["chat_template"] as? [[String: Any]] {
                // Several named templates: the "default" one.
                if let t = list.first(where: { $0["name"] as? String == "default" })?["template"] as? String {
                    config.chatTemplate = t
                    config.chatTemplateFile = configPath
                }
            }
        }
        if let data = fm.contents(atPath: jinjaPath) {
            config.chatTemplate = String(decoding: data, as: UTF8.self)
            config.chatTemplateFile = jinjaPath
        }
        return config
    }

    /// `"<s>"` or `{"content": "<s>", …}` (older AddedToken form).
    static func tokenContent(_ value: Any?) -> String? {
        if let s = value as? String { return s }
        if let d = value as? [String: Any] { return d["content"] as? String }
        return nil
    }
}
