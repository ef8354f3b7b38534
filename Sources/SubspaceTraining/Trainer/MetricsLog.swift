import Foundation

/// `metrics.jsonl` in the run folder: one JSON object per optimizer step (`step`, `loss`, `lr`,
/// `grad_norm`, `tokens_per_s`, …) and one per evaluation (`val_loss`, `perplexity`, `exact_match`).
/// On resume, lines past the resumed step are dropped so the file tells one consistent history.
public final class MetricsLog {
    public let path: String
    private var handle: FileHandle?
    private let encoder: JSONEncoder

    public init(folder: String, resumeStep: Int) throws {
        path = (folder as NSString).appendingPathComponent("metrics.jsonl")
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var kept = ""
        if resumeStep > 0, let existing = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in existing.split(separator: "\n") {
                if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let step = object["step"] as? Int, step <= resumeStep {
                    kept += line + "\n"
                }
            }
        }
        try kept.write(toFile: path, atomically: true, encoding: .utf8)
        handle = FileHandle(forWritingAtPath: path)
        handle?.seekToEndOfFile()
    }

    public func append<T: Encodable>(_ value: T) {
        guard let data = try? encoder.encode(value) else { return }
        handle?.write(data + Data("\n".utf8))
    }

    deinit { try? handle?.close() }
}
