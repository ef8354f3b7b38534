import Foundation
import Testing
import SubspaceCore
import SubspaceTestSupport
@testable import SubspaceStudies

/// A stage's final/ whose tensor files do not open is not "done earlier" (issue 17: a truncated teacher
/// final/ was skipped and the study failed later, in the comparison).
@Suite struct RunStagesDamageTests {
    @Test func truncatedFinalIsDamage() throws {
        let folder = try TestFiles.temporaryFolder("final")
        defer { TestFiles.cleanUp(folder) }
        #expect(RunStages.damage(folder)?.contains("holds no .safetensors file") == true)
        var writer = SafetensorsWriter(metadata: [:])
        writer.add("w", Tensor(shape: [64]) { $0.update(repeating: 1) })
        let file = (folder as NSString).appendingPathComponent("model.safetensors")
        try writer.write(to: file)
        #expect(RunStages.damage(folder) == nil)
        let handle = try #require(FileHandle(forUpdatingAtPath: file))
        try handle.truncate(atOffset: 100)
        try handle.close()
        #expect(RunStages.damage(folder)?.contains("model.safetensors is damaged") == true, "\(String(describing: RunStages.damage(folder)))")
    }
}
