import Foundation

/// The folder a data command writes into holds nothing it did not write: it is missing, empty, or holds
/// only the command's own file names and the mark of an earlier run of that command (`corpus.json` for a
/// corpus, the generated README.md for the SFT set). Anything else is the user's, and is not replaced.
public enum OutputFolder {
    /// nil when `folder` may be written; otherwise why not, naming the files in the way.
    public static func problem(_ folder: String, own: Set<String>, isOurs: (String) -> Bool) -> String? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return nil }
        let visible = entries.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".tmp") }
        if visible.isEmpty { return nil }
        let foreign = visible.filter { !own.contains($0) }.sorted()
        if foreign.isEmpty, isOurs(folder) { return nil }
        let named = (foreign.isEmpty ? visible.sorted() : foreign)
        let list = named.prefix(5).joined(separator: ", ") + (named.count > 5 ? " and \(named.count - 5) more" : "")
        return "\(folder) holds files this command did not write (\(list)); choose an empty or new folder"
    }

    /// For `subspace data sft`: train.jsonl, test.jsonl and the generator's README.md.
    public static func sftProblem(_ folder: String) -> String? {
        problem(folder, own: ["train.jsonl", "test.jsonl", "README.md"]) { folder in
            let readme = (folder as NSString).appendingPathComponent("README.md")
            return (try? String(contentsOfFile: readme, encoding: .utf8))?.hasPrefix(SFTGenerator.readmeTitle) == true
        }
    }

    /// For `subspace data corpus`: train.bin, val.bin and corpus.json.
    public static func corpusProblem(_ folder: String) -> String? {
        problem(folder, own: [CorpusBuilder.trainFile, CorpusBuilder.validationFile, CorpusManifest.fileName]) { folder in
            FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(CorpusManifest.fileName))
        }
    }
}
