import Foundation
import Testing
@testable import SubspaceModel

@Test func scratchFuzzAgainstPython() throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: "/tmp/tokfuzz/cases.json"))
    let cases = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
    let t = try BPETokenizer(contentsOfFile: "/work/shared/fixtures/bpe-tokenizer/tokenizer.json")
    var bad = 0
    for c in cases {
        let text = c["text"] as! String
        let pieces = c["pieces"] as! [String]
        let ids = (c["ids"] as! [Any]).map { ($0 as! NSNumber).intValue }
        let got = GPT2PreTokenizer.split(text)
        if got != pieces { bad += 1; if bad < 10 { print("PIECES", text.debugDescription, got, pieces) } }
        let gotIDs = t.encode(text)
        if gotIDs != ids { bad += 1; if bad < 10 { print("IDS", text.debugDescription, gotIDs, ids) } }
        if (try t.decode(gotIDs)) != text { bad += 1; print("RT", text.debugDescription) }
        if t.encode(text, threads: 7, minimumBytes: 1) != gotIDs { bad += 1; print("PAR", text.debugDescription) }
    }
    print("fuzz cases \(cases.count) bad \(bad)")
    #expect(bad == 0)
}
