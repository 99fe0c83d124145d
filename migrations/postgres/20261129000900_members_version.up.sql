-- PostgreSQL twin of sqlite/20261129000900_members_version.up.sql.
ALTER TABLE groups ADD COLUMN members_version BIGINT NOT NULL DEFAULT 0;

--bun:split

CREATE FUNCTION group_members_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE groups SET members_version = members_version + 1 WHERE id = NEW.group_id;
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE groups SET members_version = members_version + 1 WHERE id IN (OLD.group_id, NEW.group_id);
        RETURN NEW;
    ELSE
        UPDATE groups SET members_version = members_version + 1 WHERE id = OLD.group_id;
        RETURN OLD;
    END IF;
END;
$$;

--bun:split

CREATE TRIGGER group_members_version AFTER INSERT OR UPDATE OR DELETE ON group_members
    FOR EACH ROW EXECUTE FUNCTION group_members_version_bump();
