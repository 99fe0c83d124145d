-- members_version changes whenever a group's membership rows change, by
-- triggers, so nothing that writes group_members (including cascades) can
-- forget it. The writer caches each group's member list under this version
-- and reads the list again only when it moved.
ALTER TABLE groups ADD COLUMN members_version INTEGER NOT NULL DEFAULT 0;

--bun:split

CREATE TRIGGER group_members_version_insert AFTER INSERT ON group_members
BEGIN
    UPDATE groups SET members_version = members_version + 1 WHERE id = NEW.group_id;
END;

--bun:split

CREATE TRIGGER group_members_version_update AFTER UPDATE ON group_members
BEGIN
    UPDATE groups SET members_version = members_version + 1 WHERE id IN (OLD.group_id, NEW.group_id);
END;

--bun:split

CREATE TRIGGER group_members_version_delete AFTER DELETE ON group_members
BEGIN
    UPDATE groups SET members_version = members_version + 1 WHERE id = OLD.group_id;
END;
