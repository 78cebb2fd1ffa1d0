import ape
import pytest
from eth_utils import keccak

from conftest import CID


@pytest.fixture
def model(versions, owner):
    versions.createModel("smollm2", sender=owner)
    return versions.modelCount()


def test_publish_and_read_version(versions, owner, model):
    tx = versions.publishVersion(model, CID, 30, 0, 5_000, sender=owner)
    vid = versions.versionCount()
    assert tx.events[-1].event_name == "VersionPublished"
    v = versions.getVersion(vid)
    assert (v.modelId, v.numBlocks, v.toleranceMicros, v.manifestCid, v.deprecated) == (model, 30, 5_000, CID, False)
    assert versions.activeBlockCount(vid) == 30
    assert versions.versionIdByManifestHash(keccak(text=CID)) == vid


def test_only_maintainers_publish(versions, owner, stranger, model):
    with ape.reverts(versions.ModelVersionRegistry_NotMaintainer):
        versions.publishVersion(model, CID, 30, 0, 5_000, sender=stranger)
    versions.addMaintainer(model, stranger, sender=owner)
    versions.publishVersion(model, CID, 30, 0, 5_000, sender=stranger)
    versions.removeMaintainer(model, stranger, sender=owner)
    with ape.reverts(versions.ModelVersionRegistry_NotMaintainer):
        versions.publishVersion(model, CID + "x", 30, 0, 5_000, sender=stranger)


def test_only_owner_manages_maintainers(versions, stranger, model):
    with ape.reverts(versions.ModelVersionRegistry_NotModelOwner):
        versions.addMaintainer(model, stranger, sender=stranger)
    with ape.reverts(versions.ModelVersionRegistry_NotModelOwner):
        versions.transferModelOwnership(model, stranger, sender=stranger)


def test_publish_rejects_bad_input(versions, owner, model):
    with ape.reverts(versions.ModelVersionRegistry_UnknownModel):
        versions.publishVersion(999, CID, 30, 0, 5_000, sender=owner)
    with ape.reverts(versions.ModelVersionRegistry_BadCid):
        versions.publishVersion(model, "Qm", 30, 0, 5_000, sender=owner)
    with ape.reverts(versions.ModelVersionRegistry_BadBlockCount):
        versions.publishVersion(model, CID, 0, 0, 5_000, sender=owner)
    with ape.reverts(versions.ModelVersionRegistry_BadTolerance):
        versions.publishVersion(model, CID, 30, 0, 0, sender=owner)
    with ape.reverts(versions.ModelVersionRegistry_ParentOfOtherModel):
        versions.publishVersion(model, CID, 30, 42, 5_000, sender=owner)
    with ape.reverts(versions.ModelVersionRegistry_EmptyName):
        versions.createModel("", sender=owner)


def test_duplicate_manifest_rejected(versions, owner, model):
    versions.publishVersion(model, CID, 30, 0, 5_000, sender=owner)
    with ape.reverts(versions.ModelVersionRegistry_DuplicateManifest):
        versions.publishVersion(model, CID, 30, 0, 5_000, sender=owner)


def test_deprecate_and_supersede(versions, owner, stranger, model):
    versions.publishVersion(model, CID, 30, 0, 5_000, sender=owner)
    v1 = versions.versionCount()
    versions.publishVersion(model, CID + "2", 30, v1, 5_000, sender=owner)
    v2 = versions.versionCount()
    assert versions.getVersion(v2).parentId == v1
    with ape.reverts(versions.ModelVersionRegistry_NotMaintainer):
        versions.deprecateVersion(v1, v2, sender=stranger)
    with ape.reverts(versions.ModelVersionRegistry_BadSuccessor):
        versions.deprecateVersion(v1, v1, sender=owner)
    tx = versions.deprecateVersion(v1, v2, sender=owner)
    assert tx.events[-1].event_name == "VersionDeprecated"
    assert versions.activeBlockCount(v1) == 0
    assert versions.getVersion(v1).supersededBy == v2
    with ape.reverts(versions.ModelVersionRegistry_AlreadyDeprecated):
        versions.deprecateVersion(v1, 0, sender=owner)
    with ape.reverts(versions.ModelVersionRegistry_UnknownVersion):
        versions.deprecateVersion(77, 0, sender=owner)


def test_adapters_published_by_anyone(versions, owner, stranger, model):
    versions.publishVersion(model, CID, 30, 0, 5_000, sender=owner)
    vid = versions.versionCount()
    versions.publishAdapter(vid, CID, "chat-lora", "lora,chat", sender=stranger)
    a = versions.getAdapter(versions.adapterCount())
    assert (a.baseVersionId, a.publisher, a.name, a.tags) == (vid, stranger.address, "chat-lora", "lora,chat")
    with ape.reverts(versions.ModelVersionRegistry_UnknownVersion):
        versions.publishAdapter(99, CID, "x", "", sender=stranger)
    with ape.reverts(versions.ModelVersionRegistry_BadCid):
        versions.publishAdapter(vid, "", "x", "", sender=stranger)
