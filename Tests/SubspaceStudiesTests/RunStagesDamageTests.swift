import Foundation
import Testing
import SubspaceCore
import SubspaceTestSupport
import SubspaceDistributed
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

/// A rank-0 step that fails ends every rank with an error, none left waiting at the next collective.
@Suite struct StudyContextTests {
    struct Refused: Error {}

    @Test func aFailingRootStepFailsEveryRank() throws {
        let outcomes = try LocalCluster.run(size: 3, timeout: 30) { comm -> String in
            let context = StudyContext(world: comm)
            try context.onRoot("a step that works") {}
            do {
                try context.onRoot("writing the report") { throw Refused() }
                return "no error"
            } catch is Refused {
                return "own error"
            } catch let e as RootStepError {
                return "\(e)"
            }
        }
        #expect(outcomes[0] == "own error")
        #expect(outcomes[1] == "writing the report failed on rank 0 (its error says why)" && outcomes[2] == outcomes[1])
    }
}
