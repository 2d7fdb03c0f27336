-- The admin API's resources: plans the API made or changed are its own (the catalogue seeder leaves them alone),
-- and the indexes the users, servers and orders listings filter on.

-- `catalog`: seeded from config/plans.toml (the seeder adds, relists, reprices and retires it);
-- `api`: made or changed through the admin API or dashboard (the seeder never touches it again)
ALTER TABLE plans ADD COLUMN source TEXT NOT NULL DEFAULT 'catalog' CHECK (source IN ('catalog', 'api'));
CREATE INDEX plans_location ON plans (location_code, id);

CREATE INDEX users_banned ON users (id) WHERE banned_at IS NOT NULL;
CREATE INDEX users_language ON users (language, id);
CREATE INDEX orders_user_created ON orders (user_id, created_at, id);
CREATE INDEX orders_plan_created ON orders (plan_id, created_at, id);
